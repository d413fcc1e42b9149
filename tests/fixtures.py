"""A real PostgreSQL for every test: the embedded one, started by the suite, or TEST_DATABASE_URL's.

A plugin, named by tests/conftest.py and bench/tests/conftest.py, rather than a conftest.py itself, so that
the bench's own tests get the same server and fixtures; registered after pytest-postgresql's own plugin,
its `postgresql` is the one tests get.

The suite makes its own owner and app roles with the DBA's scripts of sql/setup/. The migrations run
once, as the owner, into a template database; pytest-postgresql clones it for each test, and the API
under test connects as the app role.
"""

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx
import psycopg
import pytest
from psycopg import sql
from pytest_postgresql import factories
from pytest_postgresql.executors import NoopExecutor

from api.app import create_app
from api.ops import migrator
from api.ops.cluster import Cluster, EmbeddedCluster, cluster_for
from api.ops.embedded import find_binaries
from api.ops.provision import create_roles, find_psql
from api.ops.seed import copy_users
from tests.helpers import (
    APP,
    MODULE_DATABASE,
    OWNER,
    SEEDED_DATABASE,
    TEST_DATABASES,
    USERS,
    ClientFactory,
    ServedAPI,
    database_made_by_dba,
    fresh_database,
    make_settings,
    serve,
)

ROOT = Path(__file__).resolve().parent.parent
SUITE_PGDATA = ROOT / ".pgdata-test"
TEST_DATABASE = "users_api_test"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The server the suite uses: TEST_DATABASE_URL's, or an embedded one of its own, durability off."""
    with cluster_for(os.environ.get("TEST_DATABASE_URL"), SUITE_PGDATA, durable=False) as found:
        yield found


@pytest.fixture(scope="session")
def postgresql_server(cluster: Cluster) -> NoopExecutor:
    """The suite's server, described the way pytest-postgresql's factories expect."""
    return NoopExecutor(
        host=cluster.host,
        port=cluster.port,
        user=cluster.user,
        password=cluster.password,
        dbname=TEST_DATABASE,
        options="",
    )


@pytest.fixture(scope="session")
def psql() -> Path:
    return find_psql(find_binaries())


@pytest.fixture(scope="session")
def roles(cluster: Cluster, postgresql_server: NoopExecutor, psql: Path) -> Iterator[None]:
    """The suite's OWNER and APP roles, made afresh by sql/setup/create_roles.sql and dropped at the end."""
    _drop_test_roles(cluster, postgresql_server)  # and the databases of an interrupted run that hold their objects
    create_roles(psql, cluster.url("postgres"), OWNER, APP)
    yield
    _drop_test_roles(cluster, postgresql_server)


def _drop_test_roles(cluster: Cluster, server: NoopExecutor) -> None:
    for name in (server.template_dbname, TEST_DATABASE, *TEST_DATABASES):
        fresh_database(cluster, name)
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        for role in (APP, OWNER):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role.name)))


@pytest.fixture(scope="session")
def migrated_template(
    cluster: Cluster, postgresql_server: NoopExecutor, roles: None, psql: Path
) -> Iterator[NoopExecutor]:
    """A template database made as a DBA would, holding the real migrations, applied once for the run."""
    template = postgresql_server.template_dbname
    with database_made_by_dba(cluster, template, psql):
        migrator.apply(cluster.url(template, OWNER), APP.name)
        yield postgresql_server


# A fresh clone of the template for each test, with a psycopg connection to it as the superuser.
postgresql = factories.postgresql("migrated_template")


@pytest.fixture
def database_url(postgresql: Any, cluster: Cluster) -> str:
    """The test's database as the app role: what the API under test connects as."""
    return cluster.url(TEST_DATABASE, APP)


@pytest.fixture
def owner_database_url(postgresql: Any, cluster: Cluster) -> str:
    """The test's database as the owner role, for what the app role may not do (ANALYZE)."""
    return cluster.url(TEST_DATABASE, OWNER)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def client_factory(request: pytest.FixtureRequest) -> ClientFactory:
    """The app built with these settings, extra `routes` added, served in-process while the block runs.

    As Starlette's test_client_factory. On the test's database unless another `database_url` is given
    (one that cannot be reached, say), which then needs no database of its own.
    """

    def factory(
        *,
        database_url: str | None = None,
        routes: Mapping[str, Callable[..., Any]] | None = None,
        raise_app_exceptions: bool = True,
        **settings: Any,
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        url = database_url or request.getfixturevalue("database_url")
        app = create_app(make_settings(url, **settings))
        for path, endpoint in (routes or {}).items():
            app.add_api_route(path, endpoint)
        return serve(app, raise_app_exceptions=raise_app_exceptions)

    return factory


@pytest.fixture
async def client(client_factory: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    """The app over HTTP in-process, its lifespan (and so its pool) running, on the test's database."""
    async with client_factory() as client:
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


@pytest.fixture(scope="session")
def seeded_database(cluster: Cluster, migrated_template: NoopExecutor) -> Iterator[str]:
    """A database holding 200,000 users, loaded with COPY and analysed once per run, as its owner's URL.

    For tests that only read it: the plans of the query files and the catalogue. Cloned from the
    migrated template, seeded as the app role, as `users-api seed` does; analysed as the owner, since
    the app role may not.
    """
    with fresh_database(cluster, SEEDED_DATABASE, migrated_template.template_dbname):
        asyncio.run(copy_users(cluster.url(SEEDED_DATABASE, APP), USERS))
        with psycopg.connect(cluster.url(SEEDED_DATABASE, OWNER), autocommit=True) as conn:
            conn.execute("ANALYZE users")
        yield cluster.url(SEEDED_DATABASE, OWNER)


@pytest.fixture(scope="module")
def module_database_url(cluster: Cluster, migrated_template: NoopExecutor) -> Iterator[str]:
    """A database of the test module's own, cloned once from the template, as the app role.

    For tests that each leave it as they found it, such as refusals that must store nothing: a module
    of a hundred of them clones one database rather than a hundred.
    """
    with fresh_database(cluster, MODULE_DATABASE, migrated_template.template_dbname):
        yield cluster.url(MODULE_DATABASE, APP)


@pytest.fixture
async def seeded(seeded_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the seeded database, as its owner, that may only read it: the run's tests share it."""
    conn = await asyncpg.connect(seeded_database, server_settings={"default_transaction_read_only": "on"})
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
def servers_only_in_slow_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that starts a server of its own (`users-api serve`, an embedded PostgreSQL) must be marked slow.

    `make check` leaves slow tests out to stay quick; this keeps the mark honest, failing the test that
    starts one unmarked. The suite's own server, started by whichever test needs it first, is let through.
    """
    if request.node.get_closest_marker("slow") is not None:
        return
    enter = EmbeddedCluster.__enter__

    def refused(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError(f"{request.node.nodeid} starts a server of its own: mark it @pytest.mark.slow")

    def suite_server_only(server: EmbeddedCluster) -> EmbeddedCluster:
        if server.data_dir != SUITE_PGDATA.resolve():
            refused()
        return enter(server)

    monkeypatch.setattr(EmbeddedCluster, "__enter__", suite_server_only)
    monkeypatch.setattr(ServedAPI, "__init__", refused)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--write-sql-catalog",
        action="store_true",
        help="write sql/README.md afresh instead of failing when it is out of date (make sql-catalog)",
    )
    parser.addoption(
        "--write-openapi",
        action="store_true",
        help="write tests/openapi.json from the served document instead of failing when they differ",
    )
