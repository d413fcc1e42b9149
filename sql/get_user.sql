-- get_user: one user by id, as its public JSON.
-- Parameters: $1 id (bigint).
-- Returns: the user's JSON (body), or no row. Times in the session's TimeZone (UTC for the service).
-- uses: users_pkey

SELECT
    json_build_object(
        'id', id,
        'email', email,
        'name', name,
        'created_at', created_at,
        'updated_at', updated_at
    )::text AS body
FROM users
WHERE id = $1;
