"""The migrations: up, down and up again, on an empty database, as yoyo applies them."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from pytest_postgresql.executors import NoopExecutor

from api import migrations

from support import fresh_database, url_of

EMPTY_DATABASE = "users_api_migrations_test"


@pytest.fixture
def empty_database(postgresql_server: NoopExecutor) -> Iterator[str]:
    with fresh_database(postgresql_server, EMPTY_DATABASE):
        yield url_of(postgresql_server, EMPTY_DATABASE)


def schema(url: str) -> dict[str, set[str]]:
    """Tables, indexes and constraints of the public schema, by kind."""
    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        constraints = {
            r[0] for r in conn.execute("SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace")
        }
    return {"tables": tables - {t for t in tables if t.startswith("_yoyo") or t.startswith("yoyo")},
            "indexes": indexes, "constraints": constraints}  # fmt: skip


def test_up_down_up(empty_database: str) -> None:
    assert migrations.apply(empty_database) == ["0001_create_users"]
    up = schema(empty_database)
    assert up["tables"] == {"users"}
    assert {"users_pkey", "users_email_key"} <= up["indexes"]
    assert {"users_pkey", "users_email_length_check", "users_name_length_check"} <= up["constraints"]

    assert migrations.apply(empty_database) == [], "applying twice changes nothing"

    assert migrations.rollback(empty_database) == ["0001_create_users"]
    assert schema(empty_database)["tables"] == set()

    assert migrations.apply(empty_database) == ["0001_create_users"]
    assert schema(empty_database) == up


@pytest.mark.parametrize(
    ("email", "name"),
    [("a" * 321, "ok"), ("ok@example.com", ""), ("ok@example.com", "n" * 201)],
    ids=["email over 320", "empty name", "name over 200"],
)
def test_check_constraints_hold_the_api_limits(empty_database: str, email: str, name: str) -> None:
    migrations.apply(empty_database)
    with psycopg.connect(empty_database) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO users (email, name) VALUES (%s, %s)", (email, name))


def test_yoyo_url_uses_psycopg() -> None:
    assert migrations.yoyo_url("postgresql://u:p@h:1/d") == "postgresql+psycopg://u:p@h:1/d"
    assert migrations.yoyo_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        migrations.yoyo_url("mysql://u@h/d")


def test_concurrent_deploys_apply_each_migration_once(empty_database: str) -> None:
    # Two deploys migrating at once: yoyo's lock makes the second wait, then find nothing to do.
    with ThreadPoolExecutor(max_workers=2) as deploys:
        results = list(deploys.map(migrations.apply, [empty_database, empty_database]))

    assert sorted(results) == [[], ["0001_create_users"]]
    assert schema(empty_database)["tables"] == {"users"}
