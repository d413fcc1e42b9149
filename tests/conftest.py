"""A real PostgreSQL for every test: the embedded one, started by the suite, or TEST_DATABASE_URL's.

The migrations run once into a template database; pytest-postgresql clones it for each test.
"""

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from psycopg.conninfo import conninfo_to_dict
from pytest_postgresql import factories
from pytest_postgresql.executors import NoopExecutor

from api import migrations
from api.app import create_app
from api.embedded import embedded_postgres

from support import free_port, fresh_database, make_settings, postgres_url, serve, url_of

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


def _apply_migrations(host: str, port: int, user: str, dbname: str, password: str | None, **_: Any) -> None:
    migrations.apply(postgres_url(host, port, user, password, dbname))


@pytest.fixture(scope="session")
def migrated_template(postgresql_server: NoopExecutor) -> Iterator[NoopExecutor]:
    """A template database holding the real migrations, applied once for the whole run."""
    janitor = fresh_database(postgresql_server, postgresql_server.template_dbname, as_template=True)
    with janitor:
        janitor.load(_apply_migrations)
        yield postgresql_server


# A fresh clone of the template for each test, with a psycopg connection to it.
postgresql = factories.postgresql("migrated_template")


@pytest.fixture
def database_url(postgresql: Any, migrated_template: NoopExecutor) -> str:
    return url_of(migrated_template, TEST_DATABASE)


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
