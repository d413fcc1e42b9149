-- sqlfluff:templater:placeholder:param_style:colon_optional_quotes
-- sqlfluff:rules:references.quoting:ignore_words:database,owner_role,app_role
-- create_database: the service's database, owned by the owner role; run once, after create_roles.
-- Parameters: psql variables database, owner_role, app_role.
-- Returns: nothing.
-- Notes: to give the database to the owner, a role that is not a superuser must be a member of it
-- (managed services' admin roles, for instance): the first statement makes it one.
-- Only the app role (and the owner) may connect, and nobody else may create temporary tables
-- there. On PostgreSQL 15 and later only the database's owner may create in its schema public; on 14
-- and older, also run in the new database, as a superuser:
-- ALTER SCHEMA public OWNER TO <owner_role>; REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- Run: psql -v ON_ERROR_STOP=1 -v database=users_api -v owner_role=users_api_owner -v app_role=users_api_app
--      -f sql/setup/create_database.sql

GRANT :"owner_role" TO CURRENT_USER;

CREATE DATABASE :"database" WITH OWNER :"owner_role";

REVOKE ALL ON DATABASE :"database" FROM PUBLIC;

GRANT CONNECT ON DATABASE :"database" TO :"app_role";
