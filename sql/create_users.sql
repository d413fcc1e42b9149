-- create_users: insert users unless their emails are taken, compared case-insensitively: the plain
-- creates of many requests in one statement (POST /users without Idempotency-Key while COALESCE_CREATES
-- is on, which it is by default).
-- Parameters: $1 emails (text[]), $2 names (text[]): the n-th request's email and name.
-- Returns: a row per user created: its email as given, id, version (1) and public JSON (body); none for
-- an email users_email_key already held, or one an earlier request of the same statement took.
-- Notes: rows are inserted in the order of lower(email), then of the requests: of two requests for one
-- email (in any case) the first is created and the second finds it taken, and two such statements at
-- once take the unique index's entries in the same order, so neither can wait for the other in a
-- deadlock. The service hands each request the row of its email as given, the first request with that
-- text first. One statement is one transaction: one commit for the batch instead of one per create
-- (docs/levers.md, "coalesced creates"). Times in the JSON are in the session's TimeZone, which the
-- service sets to UTC.
-- uses: users_email_key

INSERT /* create_users */ INTO users (
    email,
    name
)
SELECT
    asked.email,
    asked.name
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS asked (email, name, n)
ORDER BY lower(asked.email), asked.n
ON CONFLICT (lower(email)) DO NOTHING
RETURNING
    email,
    id,
    version,
    json_build_object(
        'id', id,
        'email', email,
        'name', name,
        'created_at', created_at,
        'updated_at', updated_at
    )::text AS body;
