-- forget_idempotency_key: remove a key's answer kept over 24 hours ago, so that the key can be used
-- again at once rather than once expired keys are removed.
-- Parameters: $1 key (text).
-- Returns: the key removed, or no row.
-- uses: idempotency_keys_pkey

DELETE /* forget_idempotency_key */ FROM idempotency_keys
WHERE
    idempotency_key = $1
    AND created_at <= now() - interval '24 hours'
RETURNING idempotency_key;
