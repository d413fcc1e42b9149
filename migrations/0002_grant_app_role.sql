-- Grants the role the API connects as what the query files of sql/ need on users, and nothing else:
-- SELECT, INSERT, UPDATE, DELETE. No TRUNCATE, REFERENCES or TRIGGER; no right on the identity
-- sequence either, which PostgreSQL does not ask of an INSERT that lets the column default.
-- The role is named by the session setting users_api.app_role: `users-api migrate` sets it to
-- DATABASE_URL's user; by hand, run yoyo with PGOPTIONS='-c users_api.app_role=<role>'.
-- GRANT takes no parameter for a role, hence format() with %I, which quotes it as an identifier.
-- Run by the owner of users, who may grant on it without any other privilege.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $$
DECLARE
    app_role text := nullif(current_setting('users_api.app_role', TRUE), '');
BEGIN
    IF app_role IS NULL THEN
        RAISE EXCEPTION 'users_api.app_role is not set: name the role the API connects as'
        USING HINT = 'PGOPTIONS=''-c users_api.app_role=<role>'' yoyo apply ...';
    END IF;
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE users TO %I', app_role);
END
$$;
