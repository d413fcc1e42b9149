"""Least privilege: the roles and database of sql/setup/, migrated, and what the app role may not do."""

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from api.ops import migrator
from api.ops.cluster import Cluster
from api.ops.provision import ProvisionError, create_roles, scram_verifier
from api.resources import resource_dir
from tests.helpers import APP, OWNER, database_made_by_dba

DATABASE = "users_api_provision_test"
SETUP = resource_dir("sql") / "setup"
# The privileges the query files need: four on users; on idempotency_keys, no UPDATE (keys are never changed).
GRANTED = {("users", "SELECT"), ("users", "INSERT"), ("users", "UPDATE"), ("users", "DELETE")} | {
    ("idempotency_keys", "SELECT"), ("idempotency_keys", "INSERT"), ("idempotency_keys", "DELETE")
}  # fmt: skip


@pytest.fixture(scope="module")
def provisioned(cluster: Cluster, roles: None, psql: Path) -> Iterator[Cluster]:
    """The service's database as a DBA makes it with sql/setup/, migrated by the owner role."""
    with database_made_by_dba(cluster, DATABASE, psql):
        migrator.apply(cluster.url(DATABASE, OWNER), APP.name)
        with psycopg.connect(cluster.url(DATABASE, APP), autocommit=True) as conn:
            conn.execute("INSERT INTO users (email, name) VALUES ('kept@example.com', 'Kept')")
        yield cluster


@pytest.fixture
def as_app(provisioned: Cluster) -> Iterator[psycopg.Connection]:
    with psycopg.connect(provisioned.url(DATABASE, APP), autocommit=True) as conn:
        yield conn


@pytest.fixture
def as_owner(provisioned: Cluster) -> Iterator[psycopg.Connection]:
    with psycopg.connect(provisioned.url(DATABASE, OWNER), autocommit=True) as conn:
        yield conn


def yoyo_tables(as_owner: psycopg.Connection) -> list[str]:
    rows = as_owner.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename NOT IN ('users', 'idempotency_keys') ORDER BY tablename"
    ).fetchall()
    return [row[0] for row in rows]


def test_the_app_role_holds_exactly_the_privileges_the_query_files_need(as_owner: psycopg.Connection) -> None:
    table_privileges = as_owner.execute(
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants WHERE grantee = %s",
        (APP.name,),
    ).fetchall()
    # Every other kind of right, by catalogue: database, schema, sequence, column grants, and what it owns.
    rights = as_owner.execute(
        """
        SELECT
            has_database_privilege(%(app)s, current_database(), 'CREATE'),
            has_database_privilege(%(app)s, current_database(), 'TEMPORARY'),
            has_schema_privilege(%(app)s, 'public', 'CREATE'),
            has_sequence_privilege(%(app)s, 'users_id_seq', 'USAGE'),
            has_sequence_privilege(%(app)s, 'users_id_seq', 'UPDATE'),
            (SELECT count(*) FROM pg_attribute WHERE attrelid IN ('users'::regclass, 'idempotency_keys'::regclass)
                AND attacl IS NOT NULL),
            (SELECT count(*) FROM pg_class WHERE relowner = %(app)s::regrole),
            (SELECT count(*) FROM pg_namespace WHERE nspowner = %(app)s::regrole),
            (SELECT count(*) FROM pg_proc WHERE proowner = %(app)s::regrole),
            (SELECT count(*) FROM pg_type WHERE typowner = %(app)s::regrole)
        """,
        {"app": APP.name},
    ).fetchone()
    attributes = as_owner.execute(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = %s",
        (APP.name,),
    ).fetchone()

    assert set(table_privileges) == GRANTED
    assert rights == (False, False, False, False, False, 0, 0, 0, 0, 0)
    assert attributes == (False, False, False, False, False)


def test_the_app_role_cannot_read_or_change_yoyos_tables(
    as_app: psycopg.Connection, as_owner: psycopg.Connection
) -> None:
    tables = yoyo_tables(as_owner)
    assert len(tables) >= 3, tables  # yoyo's migration, log and lock tables at least

    for table in tables:
        for statement in ("SELECT count(*) FROM {}", "DELETE FROM {}", "TRUNCATE {}", "DROP TABLE {}"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                as_app.execute(psycopg.sql.SQL(statement).format(psycopg.sql.Identifier(table)))


# What a compromised API could try. Every statement must fail for want of privilege.
FORBIDDEN = [
    "CREATE TABLE intruder (id int)",
    "CREATE TEMPORARY TABLE intruder (id int)",
    "CREATE UNLOGGED TABLE intruder (id int)",
    "CREATE VIEW intruder AS SELECT 1 AS one",
    "CREATE SEQUENCE intruder",
    "CREATE SCHEMA intruder",
    "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE TYPE intruder AS (id int)",
    "CREATE INDEX intruder ON users (name)",
    "CREATE TRIGGER intruder BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    "CREATE POLICY intruder ON users USING (true)",
    "CREATE RULE intruder AS ON INSERT TO users DO INSTEAD NOTHING",
    "CREATE PUBLICATION intruder FOR TABLE users",
    "CREATE ROLE intruder",
    "CREATE DATABASE intruder",
    "ALTER TABLE users ADD COLUMN intruder text",
    "ALTER TABLE users DROP CONSTRAINT users_name_length_check",
    "ALTER TABLE users DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE users OWNER TO {app}",
    "ALTER INDEX users_email_key RENAME TO intruder",
    "ALTER SEQUENCE users_id_seq RESTART WITH 1",
    "ALTER SCHEMA public RENAME TO intruder",
    "ALTER DATABASE {database} OWNER TO {app}",
    "ALTER DATABASE {database} SET statement_timeout = 0",
    "ALTER ROLE {owner} PASSWORD 'intruder'",
    "ALTER SYSTEM SET statement_timeout = 0",
    "COMMENT ON TABLE users IS 'intruder'",
    "DROP TABLE users",
    "DROP INDEX users_email_key",
    "DROP SEQUENCE users_id_seq",
    "DROP SCHEMA public CASCADE",
    "DROP ROLE {owner}",
    "TRUNCATE users",
    "SELECT setval('users_id_seq', 1)",
]


@pytest.mark.parametrize("statement", FORBIDDEN)
def test_the_app_role_cannot_create_alter_drop_or_truncate(
    as_app: psycopg.Connection, as_owner: psycopg.Connection, statement: str
) -> None:
    names = {"app": APP.name, "owner": OWNER.name, "database": DATABASE}
    composed = psycopg.sql.SQL(statement).format(**{key: psycopg.sql.Identifier(value) for key, value in names.items()})

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_app.execute(composed)

    assert as_owner.execute("SELECT email FROM users").fetchall() == [("kept@example.com",)]


def test_dropping_the_database_is_refused_for_want_of_ownership(provisioned: Cluster) -> None:
    # From another database, so that PostgreSQL's refusal is the ownership check, not "currently open".
    with (
        psycopg.connect(provisioned.url("postgres", APP), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner of database"),
    ):
        conn.execute(psycopg.sql.SQL("DROP DATABASE {}").format(psycopg.sql.Identifier(DATABASE)))


def test_the_app_role_does_what_the_query_files_need(as_app: psycopg.Connection) -> None:
    # INSERT through the identity column without any right on its sequence, then the other three.
    new_id = as_app.execute("INSERT INTO users (email, name) VALUES ('new@example.com', 'New') RETURNING id").fetchone()
    assert new_id is not None
    as_app.execute("UPDATE users SET name = 'Renamed' WHERE id = %s", new_id)
    assert as_app.execute("SELECT name FROM users WHERE id = %s", new_id).fetchone() == ("Renamed",)
    assert as_app.execute("DELETE FROM users WHERE id = %s RETURNING id", new_id).fetchone() == new_id


def test_the_app_role_has_the_documented_timeouts(as_app: psycopg.Connection) -> None:
    script = (SETUP / "create_roles.sql").read_text(encoding="utf-8")
    guide = (Path(__file__).resolve().parent.parent / "docs" / "dba.md").read_text(encoding="utf-8")
    declared = dict(re.findall(r"""^ALTER ROLE :"app_role" SET (\w+) = '([^']+)';$""", script, flags=re.MULTILINE))

    assert set(declared) == {"statement_timeout", "idle_in_transaction_session_timeout"}
    for setting, value in declared.items():
        assert as_app.execute(psycopg.sql.SQL("SHOW {}").format(psycopg.sql.Identifier(setting))).fetchone() == (value,)
        assert f"`{setting}` = `{value}`" in guide, f"docs/dba.md states {setting} = {value}"


def test_making_the_roles_twice_fails_with_postgresqls_words(roles: None, psql: Path, cluster: Cluster) -> None:
    with pytest.raises(ProvisionError, match=f'role "{OWNER.name}" already exists'):
        create_roles(psql, cluster.url("postgres"), OWNER, APP)


def test_a_scram_verifier_is_what_postgresql_stores() -> None:
    verifier = scram_verifier("correct horse")

    assert re.fullmatch(r"SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}", verifier)
    assert scram_verifier("correct horse") != verifier, "a fresh salt each time"
    with pytest.raises(ValueError, match="ASCII"):
        scram_verifier("pässword")
