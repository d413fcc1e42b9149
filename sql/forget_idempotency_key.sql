-- forget_idempotency_key: remove a client's key's answer kept over 24 hours ago, so that the key can be
-- used again at once rather than once expired keys are removed.
-- Parameters: $1 key (text), $2 principal (text, as create_user_once's).
-- Returns: the key removed, or no row.
-- uses: idempotency_keys_pkey

DELETE /* forget_idempotency_key */ FROM idempotency_keys
WHERE
    principal = $2
    AND idempotency_key = $1
    AND created_at <= now() - interval '24 hours'
RETURNING idempotency_key;
