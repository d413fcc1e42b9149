-- Makes (principal, idempotency_key) the primary key of idempotency_keys, on the index 0006 built:
-- a key is unique per client from now on. The old primary key's index goes; the new one takes its
-- name, idempotency_keys_pkey, which the API reads in the unique violation of a key kept meanwhile.
-- Nothing is built here: the lock (ACCESS EXCLUSIVE) lasts milliseconds once granted.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- The constraint dropped is replaced in the same statement, on the wider key.
ALTER TABLE idempotency_keys
-- squawk-ignore ban-drop-constraint
DROP CONSTRAINT idempotency_keys_pkey,
ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY USING INDEX idempotency_keys_principal_key_idx;
