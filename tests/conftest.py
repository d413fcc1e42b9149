"""A real PostgreSQL for every test: the embedded one, started by the suite, or TEST_DATABASE_URL's.

The suite makes its own owner and app roles with the DBA's scripts of sql/setup/. The migrations run
once, as the owner, into a template database; pytest-postgresql clones it for each test, and the API
under test connects as the app role.
"""

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pytest_postgresql import factories
from pytest_postgresql.executors import NoopExecutor

from api import migrations
from api.app import create_app
from api.embedded import embedded_postgres, find_binaries
from api.provision import create_roles, find_psql
from api.seed import seed

from catalog import USERS
from support import (
    APP,
    OWNER,
    TEST_DATABASES,
    database_made_by_dba,
    free_port,
    fresh_database,
    make_settings,
    serve,
    url_of,
)

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE = "users_api_test"


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[NoopExecutor]:
    """The server the suite uses, described the way pytest-postgresql's factories expect."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        info = conninfo_to_dict(given)
        yield NoopExecutor(
            host=str(info.get("host", "127.0.0.1")),
            port=int(str(info.get("port", 5432))),
            user=str(info.get("user", "postgres")),
            password=str(info["password"]) if "password" in info else None,
            dbname=TEST_DATABASE,
            options="",
        )
        return
    with embedded_postgres(ROOT / ".pgdata-test", free_port(), durable=False) as server:
        yield NoopExecutor(
            host="127.0.0.1",
            port=server.port,
            user="postgres",
            password=server.password,
            dbname=TEST_DATABASE,
            options="",
        )


@pytest.fixture(scope="session")
def psql() -> Path:
    return find_psql(find_binaries())


@pytest.fixture(scope="session")
def roles(postgresql_server: NoopExecutor, psql: Path) -> Iterator[None]:
    """The suite's OWNER and APP roles, made afresh by sql/setup/create_roles.sql and dropped at the end."""
    _drop_test_roles(postgresql_server)  # and the databases of an interrupted run that hold their objects
    create_roles(psql, url_of(postgresql_server, "postgres"), OWNER, APP)
    yield
    _drop_test_roles(postgresql_server)


def _drop_test_roles(server: NoopExecutor) -> None:
    for name in (server.template_dbname, TEST_DATABASE, *TEST_DATABASES):
        fresh_database(server, name)
    with psycopg.connect(url_of(server, "postgres"), autocommit=True) as conn:
        for role in (APP, OWNER):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role.name)))


@pytest.fixture(scope="session")
def migrated_template(postgresql_server: NoopExecutor, roles: None, psql: Path) -> Iterator[NoopExecutor]:
    """A template database made as a DBA would, holding the real migrations, applied once for the run."""
    template = postgresql_server.template_dbname
    with database_made_by_dba(postgresql_server, template, psql):
        migrations.apply(url_of(postgresql_server, template, OWNER), APP.name)
        yield postgresql_server


# A fresh clone of the template for each test, with a psycopg connection to it as the superuser.
postgresql = factories.postgresql("migrated_template")


@pytest.fixture
def database_url(postgresql: Any, migrated_template: NoopExecutor) -> str:
    """The test's database as the app role: what the API under test connects as."""
    return url_of(migrated_template, TEST_DATABASE, APP)


@pytest.fixture
def owner_database_url(postgresql: Any, migrated_template: NoopExecutor) -> str:
    """The test's database as the owner role, for what the app role may not do (ANALYZE)."""
    return url_of(migrated_template, TEST_DATABASE, OWNER)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app(database_url: str) -> FastAPI:
    return create_app(make_settings(database_url))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app over HTTP in-process, its lifespan (and so its pool) running."""
    async with serve(app) as client:
        yield client


@pytest.fixture
def scratch_pgdata() -> Iterator[Path]:
    """A data folder for an embedded server of the test's own, removed afterwards.

    Under the system temp folder, not pytest's (0700 when root): as root the server's user must reach it.
    """
    scratch = Path(tempfile.mkdtemp(prefix="users-api-test-"))
    scratch.chmod(0o755)
    yield scratch / "pgdata"
    shutil.rmtree(scratch)


@pytest.fixture
def private() -> Iterator[Path]:
    """A folder only its owner may enter, made by `mktemp -d` as a user's clone would be (or like /root)."""
    home = Path(tempfile.mkdtemp(prefix="users-api-test-private-"))
    assert home.stat().st_mode & 0o777 == 0o700
    yield home
    shutil.rmtree(home)


@pytest.fixture
async def seeded(database_url: str, owner_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database holding 200,000 users, loaded with COPY and analysed.

    Seeded as the app role, as `users-api seed` does; analysed as the owner, since the app role may not.
    """
    await seed(database_url, USERS)
    conn = await asyncpg.connect(owner_database_url)
    try:
        await conn.execute("ANALYZE users")
        yield conn
    finally:
        await conn.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--write-sql-catalog",
        action="store_true",
        help="write sql/README.md afresh instead of failing when it is out of date (make sql-catalog)",
    )
