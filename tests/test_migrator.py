"""The migrations: up, down and up again, as the owner role, on a database made as a DBA would."""

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from yoyo import get_backend, read_migrations
from yoyo.migrations import parse_metadata_from_sql_comments

from api.ops import migrator
from api.ops.cluster import Cluster
from api.resources import resource_dir
from tests.helpers import APP, OWNER, database_made_by_dba

EMPTY_DATABASE = "users_api_migrations_test"
ALL = [
    "0001_create_users", "0002_grant_app_role", "0003_user_versions", "0004_idempotency_keys",
    "0005_idempotency_key_principals", "0006_idempotency_keys_by_principal", "0007_idempotency_keys_principal_pkey",
]  # fmt: skip
KEYS_BY_PRINCIPAL = ALL[4:]
GRANTED = {"users:SELECT", "users:INSERT", "users:UPDATE", "users:DELETE"}
KEYS_GRANTED = {"idempotency_keys:SELECT", "idempotency_keys:INSERT", "idempotency_keys:DELETE"}


@pytest.fixture
def empty_database(cluster: Cluster, roles: None, psql: Path) -> Iterator[str]:
    """A database made by sql/setup/create_database.sql, without any migration; the owner's URL."""
    with database_made_by_dba(cluster, EMPTY_DATABASE, psql):
        yield cluster.url(EMPTY_DATABASE, OWNER)


def schema(url: str) -> dict[str, set[str]]:
    """Tables, columns, indexes, constraints, triggers and the app role's table privileges in the public schema."""
    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        columns = {
            f"{r[0]}.{r[1]}"
            for r in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            )
        }
        triggers = {r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        constraints = {
            r[0] for r in conn.execute("SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace")
        }
        granted = {
            f"{r[0]}:{r[1]}"
            for r in conn.execute(
                "SELECT table_name, privilege_type FROM information_schema.role_table_grants WHERE grantee = %s",
                (APP.name,),
            )
        }
    ours = tables - {t for t in tables if t.startswith("_yoyo") or t.startswith("yoyo")}
    return {"tables": ours, "columns": {c for c in columns if c.split(".")[0] in ours}, "indexes": indexes,
            "constraints": constraints, "triggers": triggers, "granted": granted}  # fmt: skip


def test_up_down_up(empty_database: str) -> None:
    assert migrator.apply(empty_database, APP.name) == ALL
    up = schema(empty_database)
    assert up["tables"] == {"users", "idempotency_keys"}
    assert {"users_pkey", "users_email_key", "idempotency_keys_pkey", "idempotency_keys_created_at_idx"} <= up[
        "indexes"
    ]
    assert {"users_pkey", "users_email_length_check", "users_name_length_check"} <= up["constraints"]
    assert "users.version" in up["columns"] and up["triggers"] == {"users_version_bump"}
    assert up["granted"] == GRANTED | KEYS_GRANTED

    assert "idempotency_keys.principal" in up["columns"]
    assert "idempotency_keys_principal_key_idx" not in up["indexes"], "it became the primary key"

    assert migrator.apply(empty_database, APP.name) == [], "applying twice changes nothing"

    assert migrator.rollback(empty_database, APP.name, count=3) == KEYS_BY_PRINCIPAL[::-1]
    assert "idempotency_keys.principal" not in schema(empty_database)["columns"]
    assert migrator.rollback(empty_database, APP.name) == ["0004_idempotency_keys"]
    assert schema(empty_database)["tables"] == {"users"}
    assert schema(empty_database)["granted"] == GRANTED
    assert migrator.rollback(empty_database, APP.name) == ["0003_user_versions"]
    assert "users.version" not in schema(empty_database)["columns"] and schema(empty_database)["triggers"] == set()
    assert migrator.rollback(empty_database, APP.name) == ["0002_grant_app_role"]
    assert schema(empty_database)["granted"] == set()
    assert migrator.rollback(empty_database, APP.name) == ["0001_create_users"]
    assert schema(empty_database)["tables"] == set()

    assert migrator.apply(empty_database, APP.name) == ALL
    assert schema(empty_database) == up


def test_0006_runs_again_after_a_build_that_failed_left_its_index_invalid(empty_database: str) -> None:
    migrator.apply(empty_database, APP.name)
    migrator.rollback(empty_database, APP.name, count=2)  # back to 0005
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO idempotency_keys (idempotency_key, request_sha256, user_id, version, body)"
            " VALUES ('a', '', 1, 1, ''), ('b', '', 2, 1, '')"
        )
        # A concurrent build that fails leaves its index behind, invalid, as one stopped by lock_timeout does.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY idempotency_keys_principal_key_idx ON idempotency_keys (principal)"
            )

    assert migrator.apply(empty_database, APP.name) == KEYS_BY_PRINCIPAL[1:]
    with psycopg.connect(empty_database) as conn:
        primary_key = conn.execute(
            "SELECT pg_get_indexdef(indexrelid), indisvalid FROM pg_index"
            " WHERE indexrelid = 'idempotency_keys_pkey'::regclass"
        ).fetchone()
    assert primary_key == (
        "CREATE UNIQUE INDEX idempotency_keys_pkey ON public.idempotency_keys USING btree (principal, idempotency_key)",
        True,
    )


def test_without_the_app_role_setting_0002_stops_and_says_so(empty_database: str) -> None:
    # yoyo's own way in, as a DBA running `yoyo apply` without PGOPTIONS would.
    backend = get_backend(empty_database.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with backend.lock(), pytest.raises(psycopg.errors.RaiseException, match=r"users_api\.app_role is not set"):
            backend.apply_migrations(backend.to_apply(read_migrations(str(resource_dir("migrations")))))
    finally:
        backend.connection.close()

    assert schema(empty_database)["granted"] == set()


@pytest.mark.parametrize(
    ("email", "name"),
    [("a" * 321, "ok"), ("ok@example.com", ""), ("ok@example.com", "n" * 201)],
    ids=["email over 320", "empty name", "name over 200"],
)
def test_check_constraints_hold_the_api_limits(empty_database: str, email: str, name: str) -> None:
    migrator.apply(empty_database, APP.name)
    with psycopg.connect(empty_database) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO users (email, name) VALUES (%s, %s)", (email, name))


def test_yoyo_url_uses_psycopg_and_names_the_app_role() -> None:
    assert migrator.yoyo_url("postgresql://u:p@h:1/d", "app") == (
        "postgresql+psycopg://u:p@h:1/d?options=-c+users_api.app_role%3Dapp"
    )
    assert migrator.yoyo_url("postgres://u@h/d?options=-c%20search_path%3Dx", "a b") == (
        "postgresql+psycopg://u@h/d?options=-c+search_path%3Dx+-c+users_api.app_role%3Da%5C+b"
    )
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        migrator.yoyo_url("mysql://u@h/d", "app")


def test_the_app_role_is_the_user_libpq_would_log_in_as(monkeypatch: pytest.MonkeyPatch) -> None:
    assert migrator.role_of("postgresql://app:secret@h/d") == "app"
    monkeypatch.setenv("PGUSER", "from_env")
    assert migrator.role_of("postgresql://h/d") == "from_env"


def test_concurrent_deploys_apply_each_migration_once(empty_database: str) -> None:
    # Two deploys migrating at once: yoyo's lock makes the second wait, then find nothing to do.
    with ThreadPoolExecutor(max_workers=2) as deploys:
        results = list(deploys.map(migrator.apply, [empty_database] * 2, [APP.name] * 2))

    assert sorted(results) == [[], ALL]
    assert schema(empty_database)["tables"] == {"users", "idempotency_keys"}


def outside_a_transaction_if_concurrent(text: str) -> bool:
    """CREATE or DROP INDEX CONCURRENTLY cannot run in a transaction: yoyo must run such a file outside one."""
    directives, _, _ = parse_metadata_from_sql_comments(text)
    concurrent = re.search(r"\bINDEX\s+CONCURRENTLY\b", text, flags=re.IGNORECASE) is not None
    return not concurrent or directives.get("transactional") == "false"


def test_an_index_built_concurrently_is_in_a_non_transactional_migration() -> None:
    # An index on an existing table is built CONCURRENTLY (squawk requires it), so that writes go on.
    files = sorted(resource_dir("migrations").glob("*.sql"))
    new_index = "CREATE INDEX CONCURRENTLY users_created_at_idx ON users (created_at);\n"

    assert all(outside_a_transaction_if_concurrent(path.read_text(encoding="utf-8")) for path in files)
    assert not outside_a_transaction_if_concurrent(f"-- Indexes created_at.\n\n{new_index}")
    assert outside_a_transaction_if_concurrent(f"-- Indexes created_at.\n-- transactional: false\n\n{new_index}")


def test_0003_gives_users_a_version_without_rewriting_the_table(empty_database: str) -> None:
    # A table rewritten by ALTER gets a new file: the same file afterwards means no rewrite, and no
    # long ACCESS EXCLUSIVE lock on users however many it holds.
    migrator.apply(empty_database, APP.name)
    migrator.rollback(empty_database, APP.name, count=2 + len(KEYS_BY_PRINCIPAL))  # back to 0002: no version
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, name) SELECT 'u' || n || '@example.com', 'U' FROM generate_series(1, 20000) AS n"
        )
        before = conn.execute("SELECT pg_relation_filenode('users')").fetchone()

    assert migrator.apply(empty_database, APP.name) == [
        "0003_user_versions",
        "0004_idempotency_keys",
        *KEYS_BY_PRINCIPAL,
    ]
    with psycopg.connect(empty_database, autocommit=True) as conn:
        after = conn.execute("SELECT pg_relation_filenode('users')").fetchone()
        versions = conn.execute("SELECT version, count(*) FROM users GROUP BY version").fetchall()

    assert before == after, "users was rewritten"
    assert versions == [(1, 20000)]
