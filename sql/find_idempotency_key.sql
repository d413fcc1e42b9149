-- find_idempotency_key: the answer kept for a client's Idempotency-Key within the last 24 hours.
-- Parameters: $1 key (text), $2 email (text), $3 name (text), $4 principal (text, as create_user_once's).
-- Returns: the user's id, version and JSON (body) kept with the key, and whether the request it was
-- kept for had this email and name (request_matches); no row when the key has no answer kept
-- within 24 hours.
-- Notes: run after create_user_once found the key taken since it began, in a snapshot of its own.
-- uses: idempotency_keys_pkey

SELECT /* find_idempotency_key */
    user_id AS id,
    version,
    body,
    request_sha256 = sha256(convert_to(json_build_array($2::text, $3::text)::text, 'UTF8')) AS request_matches
FROM idempotency_keys
WHERE
    principal = $4
    AND idempotency_key = $1
    AND created_at > now() - interval '24 hours';
