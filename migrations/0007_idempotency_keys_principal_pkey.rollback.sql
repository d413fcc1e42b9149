-- Makes the key alone the primary key again. Two clients may hold the same key by now: the answers
-- kept for authenticated clients (a principal other than '') are removed first, so that each key is
-- unique; their retries within 24 hours create again.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DELETE FROM idempotency_keys
WHERE principal != '';

-- Replaced below, on the key alone.
ALTER TABLE idempotency_keys
-- squawk-ignore ban-drop-constraint
DROP CONSTRAINT idempotency_keys_pkey;

-- Built in this transaction, not concurrently: a rollback's table holds a day of keys at most, and
-- restoring this constraint is what the rollback is for.
ALTER TABLE idempotency_keys
-- squawk-ignore adding-serial-primary-key-field, constraint-missing-not-valid
ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (idempotency_key);
