-- Drops idempotency_keys, and with it the API role's rights on it: stored answers are lost, and a
-- retry of a create after this rollback creates again.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- Dropping what 0004 created is this rollback's whole purpose.
-- squawk-ignore ban-drop-table
DROP TABLE idempotency_keys;
