-- get_user: one user by id, as its public JSON.
-- Parameters: $1 id (bigint).
-- Returns: the user's JSON (body), or no row.
-- Notes: times in the JSON are in the session's TimeZone, which the service sets to UTC.
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
