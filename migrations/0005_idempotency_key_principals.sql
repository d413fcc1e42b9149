-- Names who sent each kept Idempotency-Key: principal holds the bearer token's issuer and subject,
-- space-separated (an issuer's URL holds no space), or '' where the service authenticates nothing.
-- A key is then one client's own: 0006 indexes (principal, idempotency_key) and 0007 makes that the
-- primary key, so that two clients sending the same key each get their own answer.
-- ADD COLUMN with a constant default changes the catalogue only since PostgreSQL 11: no rewrite and
-- no scan of the table, whatever it holds; lock_timeout bounds the wait for its brief lock.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

ALTER TABLE idempotency_keys ADD COLUMN principal text NOT NULL DEFAULT '';
