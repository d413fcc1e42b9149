-- Drops the index of 0006 where it is still one: rolled back, 0007 has dropped it with the primary
-- key it had become, and this has nothing left to do.
-- transactional: false

SET lock_timeout = '5s';
SET statement_timeout = '60s';

DROP INDEX CONCURRENTLY IF EXISTS idempotency_keys_principal_key_idx;

RESET statement_timeout;
RESET lock_timeout;
