-- update_user: change a user's email and/or name, and stamp updated_at.
-- Parameters: $1 id (bigint), $2 email (text, NULL to keep), $3 name (text, NULL to keep).
-- Returns: the updated user's public JSON (body), or no row when the id does not exist.
-- Notes: raises unique_violation on users_email_key when the email belongs to another user.
-- Times in the JSON are in the session's TimeZone, which the service sets to UTC.
-- uses: users_pkey

UPDATE users
SET
    email = coalesce($2, email),
    name = coalesce($3, name),
    updated_at = now()
WHERE id = $1
RETURNING
    json_build_object(
        'id', id,
        'email', email,
        'name', name,
        'created_at', created_at,
        'updated_at', updated_at
    )::text AS body;
