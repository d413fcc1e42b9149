-- sqlfluff:templater:placeholder:param_style:colon_optional_quotes
-- sqlfluff:rules:references.quoting:ignore_words:replication_role
-- create_replication_role: the login role hot standbys stream the WAL as; run once per primary, as a superuser.
-- Parameters: psql variables replication_role, replication_password (a password, or its SCRAM verifier).
-- Returns: nothing.
-- Notes: REPLICATION lets the role take base backups and stream the WAL: through them it reads every
-- row of every database and the roles' password verifiers, though no SQL grant lets it read a table.
-- Its password is as sensitive as a superuser's. pg_hba.conf must let it connect to the `replication`
-- pseudo-database (initdb's default does, from 127.0.0.1 and ::1). A standby connects as it with
-- `primary_conninfo`, which `pg_basebackup -R` writes, password included, into the standby's files.
-- Run: psql -v ON_ERROR_STOP=1 -v replication_role=users_api_replication -v replication_password=...
--      -f sql/setup/create_replication_role.sql

CREATE ROLE :"replication_role" WITH
LOGIN
NOSUPERUSER
NOCREATEDB
NOCREATEROLE
REPLICATION
NOBYPASSRLS
PASSWORD :'replication_password';
