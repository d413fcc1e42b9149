-- update_user: change a user's email and/or name, and stamp updated_at, if its version is one of
-- those given (If-Match).
-- Parameters: $1 id (bigint), $2 email (text, NULL to keep), $3 name (text, NULL to keep),
-- $4 versions (bigint[]: the update happens only at one of these; NULL for any).
-- Returns: one row when the user exists: its public JSON (body) and new version once updated, both
-- NULL when its version was not one of $4 (or it was deleted meanwhile); no row when the id does
-- not exist.
-- Notes: the version is compared in the UPDATE itself, so of concurrent updates sent with the same
-- version exactly one writes: the others wait for its row lock, then find the version it left.
-- The trigger users_version_bump moves the version. Raises unique_violation on users_email_key
-- when the email belongs to another user. Times in the JSON are in the session's TimeZone, which
-- the service sets to UTC.
-- uses: users_pkey

WITH /* update_user */ updated AS (
    UPDATE users
    SET
        email = coalesce($2, email),
        name = coalesce($3, name),
        updated_at = now()
    WHERE
        id = $1
        AND ($4::bigint[] IS NULL OR version = any($4::bigint[]))
    RETURNING
        version,
        json_build_object(
            'id', id,
            'email', email,
            'name', name,
            'created_at', created_at,
            'updated_at', updated_at
        )::text AS body
)

SELECT
    (SELECT updated.body FROM updated) AS body,
    (SELECT updated.version FROM updated) AS version
FROM users
-- the user as this statement found it, before the update: whether it exists
WHERE users.id = $1;
