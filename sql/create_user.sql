-- create_user: insert a user unless the email is taken, compared case-insensitively.
-- Parameters: $1 email (text), $2 name (text).
-- Returns: the new user's id, version (1) and public JSON (body); no row when users_email_key
-- already holds the email.
-- Notes: one round trip; the unique index decides, so two concurrent requests cannot both win.
-- Times in the JSON are in the session's TimeZone, which the service sets to UTC.
-- uses: users_email_key

INSERT /* create_user */ INTO users (
    email,
    name
)
VALUES ($1, $2)
ON CONFLICT (lower(email)) DO NOTHING
RETURNING
    id,
    version,
    json_build_object(
        'id', id,
        'email', email,
        'name', name,
        'created_at', created_at,
        'updated_at', updated_at
    )::text AS body;
