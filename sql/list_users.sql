-- list_users: a page of users in id order, after a given id (keyset pagination).
-- Parameters: $1 after (bigint, 0 for the first page), $2 limit (integer).
-- Returns: up to $2 rows with id > $1, ascending: the id and the user's public JSON (body).
-- Notes: walks users_pkey from $1, so a page deep in the table costs what the first one does;
-- the caller asks for one row more than it shows to learn whether a next page exists.
-- Times in the JSON are in the session's TimeZone, which the service sets to UTC.
-- uses: users_pkey

SELECT
    id,
    json_build_object(
        'id', id,
        'email', email,
        'name', name,
        'created_at', created_at,
        'updated_at', updated_at
    )::text AS body
FROM users
WHERE id > $1
ORDER BY id
LIMIT $2;
