-- get_users: users by id, each as its public JSON with its version: the get-ones of many requests in
-- one statement (GET /users/{id} while COALESCE_READS is on, which it is by default).
-- Parameters: $1 ids (bigint[]: the ids the requests waiting together ask for).
-- Returns: a row per id that names a user: its id, version (the ETag's) and JSON (body); none for an
-- id no user has, in no particular order.
-- Notes: the service hands each request the row of its own id, or a 404. One statement instead of one
-- per request saves the API process a round trip's work for each (docs/levers.md, "coalesced reads").
-- Times in the JSON are in the session's TimeZone, which the service sets to UTC. The noqa: sqlfluff
-- reads the keyword ANY as a function, whose name it wants in lower case.
-- uses: users_pkey

SELECT /* get_users */
    id,
    version,
    json_build_object(
        'id', id,
        'email', email,
        'name', name,
        'created_at', created_at,
        'updated_at', updated_at
    )::text AS body
FROM users
WHERE id = ANY($1::bigint[]);  -- noqa: CP03
