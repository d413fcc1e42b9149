-- find_users_by_emails: the user with each of many emails, compared case-insensitively, each as a
-- JSON array of one user: the lookups of many requests in one statement (GET /users?email= while
-- COALESCE_READS is on, which it is by default).
-- Parameters: $1 emails (text[]), $2 afters (bigint[], 0 for any): the n-th lookup asks for the
-- user with the n-th email whose id is larger than the n-th after.
-- Returns: a row per lookup that finds its user: the lookup's place in the arrays (n, from 1) and the
-- array (body); none for a lookup that finds no user, whose answer is [].
-- Notes: matched by place, not by email: the service cannot lower an email as PostgreSQL does (lower()
-- follows the database's collation), and one email may be asked with two afters. users_email_key is
-- unique on lower(email), so a lookup finds at most one user. Times in the JSON are in the session's
-- TimeZone, which the service sets to UTC.
-- uses: users_email_key

SELECT /* find_users_by_emails */
    asked.n,
    json_build_array(
        json_build_object(
            'id', users.id,
            'email', users.email,
            'name', users.name,
            'created_at', users.created_at,
            'updated_at', users.updated_at
        )
    )::text AS body
FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS asked (email, after_id, n)
INNER JOIN users
    ON
        lower(asked.email) = lower(users.email)
        AND asked.after_id < users.id;
