"""What the tests share: the suite's roles and databases, the app served in-process or as a process,
users and problems over HTTP, and the plans of the query files."""

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import anyio
import asyncpg
import httpx
import psycopg
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pytest_postgresql.janitor import DatabaseJanitor

from api.app import create_app
from api.ops.cluster import DATABASE, OWNER_ROLE, Cluster, find_available_port
from api.ops.provision import Role, create_database
from api.settings import Settings

# The suite's own roles, named apart from the embedded server's: a name hard-coded anywhere would show.
OWNER = Role("users_api_test_owner", secrets.token_urlsafe(16))
APP = Role("users_api_test_app", secrets.token_urlsafe(16))
# Databases tests make besides the template and its clones; dropped with any leftovers at the start.
SEEDED_DATABASE = "users_api_seeded_test"
MODULE_DATABASE = "users_api_module_test"
TEST_DATABASES = ("users_api_migrations_test", "users_api_provision_test", SEEDED_DATABASE, MODULE_DATABASE)

USERS = 200_000  # seeded for the plans of the query files
# Representative parameters: an id in the middle of the table, a page at the start, an email.
PARAMETERS: dict[str, tuple[Any, ...]] = {
    "create_user": ("new.person@example.com", "New Person"),
    "create_users": (["new.person@example.com", "NEW.person@example.com", "other@example.com"], ["A", "B", "C"]),
    "create_user_once": ("a-key", "new.person@example.com", "New Person", "https://issuer.example user-7"),
    "find_idempotency_key": ("a-key", "new.person@example.com", "New Person", ""),
    "forget_idempotency_key": ("a-key", ""),
    "get_user": (USERS // 2,),
    "get_users": ([USERS // 2, USERS // 3, USERS + 1],),
    "list_users": (0, 50),
    "find_users_by_email": ("user100000@example.com", 0),
    "find_users_by_emails": (["user100000@example.com", "USER7@example.com", "nobody@example.com"], [0, 0, 0]),
    "update_user": (USERS // 2, None, "Renamed", [1]),
    "delete_user": (USERS // 2, [1]),
    "ping": (),
    "current_wal_lsn": (),
    "replica_status": (),
}


def fresh_database(cluster: Cluster, name: str, template: str | None = None) -> DatabaseJanitor:
    """A janitor that creates `name` on entry (empty, or a clone of `template`) and drops it on exit; a
    leftover of an interrupted run is dropped now."""
    janitor = DatabaseJanitor(
        user=cluster.user,
        host=cluster.host,
        port=cluster.port,
        password=cluster.password,
        dbname=name,
        template_dbname=template,
    )
    janitor.drop()  # left over by an interrupted run
    return janitor


@contextmanager
def database_made_by_dba(cluster: Cluster, name: str, psql: Path) -> Iterator[None]:
    """`name`, made by sql/setup/create_database.sql for the suite's roles, and dropped afterwards."""
    janitor = fresh_database(cluster, name)
    create_database(psql, cluster.url("postgres"), name, OWNER, APP)
    try:
        yield
    finally:
        janitor.drop()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: a small pool, and no `.env` file of the developer's leaking in."""
    values: dict[str, Any] = {"database_url": database_url, "pool_min_size": 1, "pool_max_size": 4}
    return Settings(_env_file=None, **(values | overrides))


@asynccontextmanager
async def serve(app: FastAPI, *, raise_app_exceptions: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """The app over HTTP in-process, its lifespan (and so its pool) running."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(manager.app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@asynccontextmanager
async def pool_kept_busy(
    client: httpx.AsyncClient, postgresql: psycopg.Connection, user_id: int
) -> AsyncIterator[list[httpx.Response]]:
    """Occupy a one-connection pool: a PATCH waits on a row that another session has locked.

    Yields the list the PATCH's response lands in once the block ends and the lock is released.
    """
    postgresql.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))
    patched: list[httpx.Response] = []

    async def patch() -> None:
        patched.append(await client.patch(f"/users/{user_id}", json={"name": "Patched"}))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(patch)
        await anyio.sleep(0.2)
        try:
            yield patched
        finally:
            postgresql.rollback()


class ClientFactory(Protocol):
    """The `client_factory` fixture: the app with these settings and extra routes, served while the block runs."""

    def __call__(
        self,
        *,
        database_url: str | None = None,
        routes: Mapping[str, Callable[..., Any]] | None = None,
        raise_app_exceptions: bool = True,
        **settings: Any,
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]: ...


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, from an app that never starts: describing the API needs no database."""
    return create_app(make_settings("postgresql://unused@127.0.0.1:1/none")).openapi()


async def create(client: httpx.AsyncClient, email: str, name: str = "Someone") -> dict[str, Any]:
    """A user made through the API; the test fails unless that was a 201."""
    response = await client.post("/users", json={"email": email, "name": name})
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """`response` is an RFC 9457 problem with `status`; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str) and body["detail"]
    return body


class ServedAPI:
    """`users-api serve` in a process of its own, as `make run` starts it, on a free port; ready once /ready is."""

    def __init__(self, env: Mapping[str, str], cwd: Path, port: int | None = None) -> None:
        self.port = port or find_available_port()
        inherited = {
            key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "OWNER_DATABASE_URL")
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api", "serve"],
            cwd=cwd,
            env=inherited | {"PORT": str(self.port)} | dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Read as it comes: a pipe left unread fills (64 KiB) and then blocks the server's next log line,
        # and with it the whole event loop, as a fault test's burst of 503 warnings did.
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout or ()), daemon=True)
        self.reader.start()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if self.client.get("/ready").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop(signal.SIGKILL)
        raise AssertionError(f"users-api serve did not become ready:\n{self.output}")

    def stop(self, signum: int) -> int:
        """Send `signum`, wait for the process to end, keep what it printed in `output`; its exit status."""
        self.process.send_signal(signum)
        return self.wait()

    def wait(self) -> int:
        """Wait for the process to end (a signal was sent); its exit status."""
        self.client.close()
        self.process.wait(timeout=60)
        self.reader.join(timeout=60)  # the output ends when every process holding the pipe has ended
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    @property
    def output(self) -> str:
        """What the process printed so far, standard output and error together."""
        return "".join(self.lines)


class Service(ServedAPI):
    """`users-api serve` on an embedded server of its own, its data asked for in `pgdata`."""

    def __init__(self, pgdata: Path, port: int | None = None, **env: str) -> None:
        env = {"EMBEDDED_PGDATA": str(pgdata), "EMBEDDED_PGPORT": str(find_available_port())} | env
        super().__init__(env, cwd=pgdata.parent, port=port)


def owner_url(data_dir: Path) -> str:
    """The embedded server's database as the owner role, read from what users-api keeps in its data folder."""
    port = int((data_dir / "pgpass").read_text().split(":")[1])
    password = (data_dir / "owner-password").read_text().strip()
    return f"postgresql://{OWNER_ROLE}:{password}@127.0.0.1:{port}/{DATABASE}"


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a plan, depth first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def explain(conn: asyncpg.Connection, query: str, *args: Any, analyze: bool = False) -> dict[str, Any]:
    """The plan of a query file's statement, as EXPLAIN (FORMAT JSON) gives it for these parameters."""
    # EXPLAIN takes the statement itself: the file's text, unchanged, with its values bound.
    prefix = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " if analyze else "EXPLAIN (FORMAT JSON) "
    text = await conn.fetchval(prefix + query, *args)
    plan: dict[str, Any] = json.loads(text)[0]["Plan"]
    return plan


Sample = tuple[str, frozenset[tuple[str, str]]]


async def scrape(client: httpx.AsyncClient) -> dict[Sample, float]:
    """Every sample of one scrape of /metrics, by name and labels."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(name: str, **labels: str) -> Sample:
    return (name, frozenset(labels.items()))
