-- Revokes from the API's role (the session setting users_api.app_role) what 0002 granted on users.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $$
DECLARE
    app_role text := nullif(current_setting('users_api.app_role', TRUE), '');
BEGIN
    IF app_role IS NULL THEN
        RAISE EXCEPTION 'users_api.app_role is not set: name the role the API connects as'
        USING HINT = 'PGOPTIONS=''-c users_api.app_role=<role>'' yoyo rollback ...';
    END IF;
    EXECUTE format('REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLE users FROM %I', app_role);
END
$$;
