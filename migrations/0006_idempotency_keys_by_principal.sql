-- Indexes the kept Idempotency-Keys by principal and key, unique: the index 0007 makes the primary key.
-- Built CONCURRENTLY, so that keyed POSTs go on while it is built, which a transaction cannot hold.
-- The settings are the session's (there is no transaction to scope them) and reset after: the build
-- waits 5 s at most for its lock, and may take as long as the table needs, an hour at most. A build
-- that failed (its lock not had in time, say) leaves an invalid index of the same name behind: it is
-- dropped first, so that this migration can simply be run again.
-- transactional: false

SET lock_timeout = '5s';
SET statement_timeout = '1h';

DROP INDEX CONCURRENTLY IF EXISTS idempotency_keys_principal_key_idx;

CREATE UNIQUE INDEX CONCURRENTLY idempotency_keys_principal_key_idx
ON idempotency_keys (principal, idempotency_key);

RESET statement_timeout;
RESET lock_timeout;
