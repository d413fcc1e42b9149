-- create_user_once: create a user once per Idempotency-Key of a client. The first request with a key
-- creates the user as create_user does and keeps its answer with the key; the same client's same key
-- again within 24 hours finds that answer instead. Removes up to 10 keys older than 24 hours on the way.
-- Parameters: $1 key (text), $2 email (text), $3 name (text), $4 principal (text: the client's token's
-- issuer and subject, space-separated; '' where nothing is authenticated).
-- Returns: one row: its outcome, and the user's id, version and JSON (body) when there is one:
--   created: the user was created, and the key kept with the answer;
--   kept: the key was used within 24 hours, for this request if request_matches (the same email
--     and name), else for another; id, version and body are the answer kept;
--   in_flight: another statement holds the key (its first request is being answered); nothing done;
--   not_created: users_email_key holds the email, either another user's or that of the key's first
--     request, kept since this statement began (find_idempotency_key tells which); nothing done.
-- Notes: a key is held, from its first try until the first request's answer is kept, by a
-- transaction-level advisory lock on hashtextextended(principal and key, 0): a second request with the
-- key finds it held and does nothing. Raises unique_violation on idempotency_keys_pkey when the key was
-- kept meanwhile with another request, or is kept from over 24 hours ago and not yet removed: nothing is
-- created (forget_idempotency_key removes the latter; whether the DELETE of expired keys below
-- removed it first depends on the order PostgreSQL runs the CTEs in, which it leaves unspecified).
-- Only one statement at a time removes expired keys (an advisory lock on the table's OID), so that
-- removals never wait for each other. Times in the JSON are in the session's TimeZone, which the
-- service sets to UTC.
-- uses: idempotency_keys_pkey

WITH /* create_user_once */ request AS (
    -- what tells a retry from another request sent with the same key
    SELECT sha256(convert_to(json_build_array($2::text, $3::text)::text, 'UTF8')) AS sha256
),

kept AS (
    SELECT
        idempotency_keys.user_id,
        idempotency_keys.version,
        idempotency_keys.body,
        idempotency_keys.request_sha256 = request.sha256 AS request_matches
    FROM idempotency_keys, request
    WHERE
        idempotency_keys.principal = $4
        AND idempotency_keys.idempotency_key = $1
        AND idempotency_keys.created_at > now() - interval '24 hours'
),

claim AS (
    SELECT pg_try_advisory_xact_lock(hashtextextended($4::text || ' ' || $1::text, 0)) AS held
    WHERE NOT EXISTS (SELECT FROM kept)
),

created AS (
    INSERT INTO users (
        email,
        name
    )
    SELECT
        $2::text,
        $3::text
    FROM claim
    WHERE claim.held
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
        )::text AS body
),

keeping AS (
    INSERT INTO idempotency_keys (
        principal,
        idempotency_key,
        request_sha256,
        user_id,
        version,
        body
    )
    SELECT
        $4 AS principal,
        $1 AS idempotency_key,
        request.sha256 AS request_sha256,
        created.id,
        created.version,
        created.body
    FROM created, request
),

remover AS (
    SELECT pg_try_advisory_xact_lock('idempotency_keys'::regclass::oid::integer, 0) AS held
),

expired AS (
    DELETE FROM idempotency_keys
    WHERE
        (SELECT remover.held FROM remover)
        -- rows by their place, an array of them: found at once whatever the table holds, and only
        -- the expired ones, whoever's they are
        AND ctid = any(array(
            SELECT oldest.ctid
            FROM idempotency_keys AS oldest
            WHERE oldest.created_at <= now() - interval '24 hours'
            ORDER BY oldest.created_at
            LIMIT 10
        ))
        AND created_at <= now() - interval '24 hours'
)

SELECT
    'created' AS outcome,
    created.id,
    created.version,
    created.body,
    TRUE AS request_matches
FROM created
UNION ALL
SELECT
    'kept' AS outcome,
    kept.user_id,
    kept.version,
    kept.body,
    kept.request_matches
FROM kept
UNION ALL
SELECT
    CASE WHEN claim.held THEN 'not_created' ELSE 'in_flight' END AS outcome,
    NULL AS id,
    NULL AS version,
    NULL AS body,
    NULL AS request_matches
FROM claim
WHERE NOT EXISTS (SELECT FROM created);
