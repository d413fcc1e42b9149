-- sqlfluff:templater:placeholder:param_style:colon_optional_quotes
-- sqlfluff:rules:references.quoting:ignore_words:owner_role,app_role
-- create_roles: the service's two login roles; run once per server, as a superuser or a CREATEROLE role.
-- Parameters: psql variables owner_role, owner_password, app_role, app_password. A password may
-- be a SCRAM verifier (what psql's \password sends), so that the plain text never reaches the server.
-- Returns: nothing.
-- Notes: the owner will own the schema and run the migrations; the app role is what the API connects
-- as: migration 0002 grants it SELECT, INSERT, UPDATE, DELETE on users, 0004 SELECT, INSERT, DELETE
-- on idempotency_keys, no more. Its timeouts bound what a stuck client or a runaway query can hold:
-- no API statement needs 5 s, and the API never leaves a transaction open.
-- Run: psql -v ON_ERROR_STOP=1 -v owner_role=users_api_owner -v owner_password=... -v app_role=users_api_app
--      -v app_password=... -f sql/setup/create_roles.sql

CREATE ROLE :"owner_role" WITH
LOGIN
NOSUPERUSER
NOCREATEDB
NOCREATEROLE
NOREPLICATION
NOBYPASSRLS
PASSWORD :'owner_password';

CREATE ROLE :"app_role" WITH
LOGIN
NOSUPERUSER
NOCREATEDB
NOCREATEROLE
NOREPLICATION
NOBYPASSRLS
PASSWORD :'app_password';

ALTER ROLE :"app_role" SET statement_timeout = '5s';

ALTER ROLE :"app_role" SET idle_in_transaction_session_timeout = '10s';
