-- Removes the users' versions, the trigger that keeps them and its function: ETags are gone. Applied
-- again, 0003 starts every user at version 1, so an ETag a client kept from before may match again.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP TRIGGER users_version_bump ON users;

-- Only the trigger above called it; it goes with the trigger.
-- squawk-ignore ban-drop-function
DROP FUNCTION users_next_version();

-- Dropping what 0003 added is this rollback's whole purpose; the API of 0003 reads the column, so
-- roll the API back first.
-- squawk-ignore ban-drop-column
ALTER TABLE users DROP COLUMN version;
