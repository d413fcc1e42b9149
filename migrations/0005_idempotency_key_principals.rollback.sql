-- Removes the principal of each kept Idempotency-Key: keys are global again. Roll 0006 and 0007 back
-- first (yoyo does, newest first), and the API with them: the API of 0005 sends a principal.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- Dropping what 0005 added is this rollback's whole purpose.
-- squawk-ignore ban-drop-column
ALTER TABLE idempotency_keys DROP COLUMN principal;
