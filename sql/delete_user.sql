-- delete_user: remove one user by id.
-- Parameters: $1 id (bigint).
-- Returns: the deleted id, or no row when the id does not exist.
-- uses: users_pkey

DELETE FROM users
WHERE id = $1
RETURNING id;
