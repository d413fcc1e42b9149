-- Drops the users table with its constraints and users_email_key; every user is lost.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- Dropping what 0001 created is this rollback's whole purpose.
-- squawk-ignore ban-drop-table
DROP TABLE users;
