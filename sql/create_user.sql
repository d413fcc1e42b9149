-- create_user: insert a user unless the email is taken, compared case-insensitively.
-- Parameters: $1 email (text), $2 name (text).
-- Returns: the new user's row; no row when users_email_key already holds the email.
-- One round trip: the unique index decides, so two concurrent requests cannot both win.

INSERT INTO users (
    email,
    name
)
VALUES ($1, $2)
ON CONFLICT (lower(email)) DO NOTHING
RETURNING
    id,
    email,
    name,
    created_at,
    updated_at;
