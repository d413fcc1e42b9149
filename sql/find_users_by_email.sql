-- find_users_by_email: the user with an email, compared case-insensitively, as a JSON array of zero
-- or one user (GET /users?email=), with a larger id than a given one.
-- Parameters: $1 email (text), $2 after (bigint, 0 for any).
-- Returns: one row: the array (body; [] when no user has the email, or its id is not after $2).
-- Notes: users_email_key is unique on lower(email), so there is at most one. Times in the JSON are
-- in the session's TimeZone, which the service sets to UTC.
-- uses: users_email_key

SELECT /* find_users_by_email */
    coalesce(
        json_agg(
            json_build_object(
                'id', id,
                'email', email,
                'name', name,
                'created_at', created_at,
                'updated_at', updated_at
            )
        ),
        '[]'
    )::text AS body
FROM users
WHERE
    lower(email) = lower($1)
    AND id > $2;
