-- Gives every user a version: 1 when created, one more at each change. The API sends it in the ETag
-- of a user's responses and compares it with If-Match in the statement that writes (RFC 9110).
-- A trigger keeps it, not the query files: a change made by hand moves a user's ETag too, and a
-- client cannot set it.
-- ADD COLUMN with a constant default is a change to the catalogue since PostgreSQL 11: no rewrite and
-- no scan of users, whatever it holds. Its ACCESS EXCLUSIVE lock lasts milliseconds once granted, and
-- lock_timeout bounds the wait for it behind running statements; the trigger's lock, the same.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

ALTER TABLE users ADD COLUMN version bigint NOT NULL DEFAULT 1;

CREATE FUNCTION users_next_version() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;

-- Only a change moves it: an UPDATE that sets every column to what it was keeps the version. The
-- comparison needs an equality for every column's type: a column of type json would need this
-- rewritten.
CREATE TRIGGER users_version_bump
BEFORE UPDATE ON users
FOR EACH ROW
WHEN (old.* IS DISTINCT FROM new.*)
EXECUTE FUNCTION users_next_version();
