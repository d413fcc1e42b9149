-- list_users: a page of users in id order, after a given id (keyset pagination), as one JSON array.
-- Parameters: $1 after (bigint, 0 for the first page), $2 limit (bigint).
-- Returns: one row: the page as a JSON array of public users (body; [] when empty), the last id on
-- it (last_id; null when empty) and whether users follow it (more).
-- Notes: walks users_pkey from $1, so a page deep in the table costs what the first one does;
-- `more` is one probe of users_pkey past the page's last id. One row rather than $2: PostgreSQL
-- builds the array, where the API would otherwise decode and join $2 rows.
-- Times in the JSON are in the session's TimeZone, which the service sets to UTC.
-- uses: users_pkey

SELECT /* list_users */
    coalesce(json_agg(page ORDER BY page.id), '[]')::text AS body,
    max(page.id) AS last_id,
    (
        -- the next id after the page, by users_pkey: an EXISTS here is planned as a scan of users
        SELECT users.id
        FROM users
        WHERE users.id > max(page.id)
        ORDER BY users.id
        LIMIT 1
    ) IS NOT NULL AS more
FROM (
    SELECT
        id,
        email,
        name,
        created_at,
        updated_at
    FROM users
    WHERE id > $1
    ORDER BY id
    LIMIT $2
) AS page;
