-- get_user: one user by id, as its public JSON, with its version (the ETag's).
-- Parameters: $1 id (bigint).
-- Returns: the user's version and JSON (body), or no row.
-- Notes: times in the JSON are in the session's TimeZone, which the service sets to UTC.
-- uses: users_pkey

SELECT /* get_user */
    version,
    json_build_object(
        'id', id,
        'email', email,
        'name', name,
        'created_at', created_at,
        'updated_at', updated_at
    )::text AS body
FROM users
WHERE id = $1;
