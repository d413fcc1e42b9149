-- get_user: one user by id.
-- Parameters: $1 id (bigint).
-- Returns: the user's row, or no row.

SELECT
    id,
    email,
    name,
    created_at,
    updated_at
FROM users
WHERE id = $1;
