"""Faults under load: PostgreSQL's connections ended, stopped, killed; the API's processes killed."""

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import httpx
import psycopg
import pytest
from psycopg import sql
from yoyo import get_backend, read_migrations

from api.ops import migrator
from api.ops.cluster import EmbeddedCluster, find_available_port, postmaster_pid
from api.ops.processes import alive
from api.resources import resource_dir
from tests.helpers import APP, OWNER, ClientFactory, ServedAPI, Service, create, owner_url, sample, scrape

# Every backend of the API's pool that is idle: what a restart, an idle timeout or a failover ends.
TERMINATE_IDLE = """
SELECT count(pg_terminate_backend(pid))
FROM pg_stat_activity
WHERE application_name = 'users-api' AND datname = current_database() AND state = 'idle'
"""


class Load:
    """Readers and writers making requests one after another; what each got."""

    def __init__(self, client: httpx.AsyncClient, paths: list[str]) -> None:
        self.client = client
        self.paths = paths
        self.reads: Counter[int] = Counter()
        self.writes: Counter[int] = Counter()
        self.created: list[dict[str, object]] = []
        self.retry_after_missing = 0

    async def run(self, seconds: float, readers: int = 6, writers: int = 2) -> None:
        deadline = time.monotonic() + seconds

        async def reader(number: int) -> None:
            n = number
            while time.monotonic() < deadline:
                response = await self.client.get(self.paths[n % len(self.paths)])
                self.count(self.reads, response)
                n += 1

        async def writer(number: int) -> None:
            n = 0
            while time.monotonic() < deadline:
                body = {"email": f"writer{number}.{n}@example.com", "name": "Writer"}
                response = await self.client.post("/users", json=body)
                self.count(self.writes, response)
                if response.status_code == 201:
                    self.created.append(response.json())
                n += 1

        await asyncio.gather(*(reader(n) for n in range(readers)), *(writer(n) for n in range(writers)))

    def count(self, statuses: Counter[int], response: httpx.Response) -> None:
        statuses[response.status_code] += 1
        if response.status_code == 503 and "retry-after" not in response.headers:
            self.retry_after_missing += 1


@pytest.mark.slow
@pytest.mark.anyio
async def test_idle_connections_ended_by_the_server_cost_no_request(
    client_factory: ClientFactory, database_url: str
) -> None:
    terminated = 0
    async with client_factory(pool_min_size=4, pool_max_size=4, raise_app_exceptions=False) as client:
        users = [await create(client, f"idle{n}@example.com") for n in range(4)]
        load = Load(client, [f"/users/{user['id']}" for user in users] + ["/users?limit=2"])
        killer = await asyncpg.connect(database_url, server_settings={"application_name": "test-killer"})
        try:

            async def terminate_repeatedly() -> None:
                nonlocal terminated
                for _ in range(40):
                    terminated += await killer.fetchval(TERMINATE_IDLE)
                    await asyncio.sleep(0.05)

            saved = sample("users_api_coalesced_statements_saved_total", read="get_user")
            before = (await scrape(client))[saved]
            await asyncio.gather(load.run(2.5), terminate_repeatedly())
            statements_saved = (await scrape(client))[saved] - before
        finally:
            await killer.close()
        stored = [(await client.get(f"/users/{user['id']}")).json() for user in load.created]

    assert terminated >= 40, "the server ended the pool's connections again and again"
    assert load.reads.total() > 200 and set(load.reads) == {200}, load.reads
    assert statements_saved > 0, "get-ones shared statements (COALESCE_READS, by default)"
    # A write whose connection ended after it was sent may or may not have been applied: a 503, which
    # a client may retry; never a 500. One refused before it was sent is run again: a 201.
    assert load.writes[201] > 50 and set(load.writes) <= {201, 503}, load.writes
    assert load.retry_after_missing == 0
    assert stored == load.created, "every user acknowledged with a 201 is there"


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_pool_held_up_by_a_lock_gives_only_200s_and_503s_then_recovers(
    client_factory: ClientFactory, postgresql: psycopg.Connection
) -> None:
    statuses: Counter[int] = Counter()
    retry_after_missing = 0
    async with client_factory(
        raise_app_exceptions=False, pool_min_size=2, pool_max_size=2, pool_acquire_timeout=0.3, command_timeout=1.0
    ) as client:
        locked, other = await create(client, "locked@example.com"), await create(client, "free@example.com")
        postgresql.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (locked["id"],))
        try:

            async def one_client(number: int) -> None:
                nonlocal retry_after_missing
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    if number % 2:  # waits for the lock, holding a connection while it does
                        response = await client.patch(f"/users/{locked['id']}", json={"name": "Patched"})
                    else:
                        response = await client.get(f"/users/{other['id']}")
                    statuses[response.status_code] += 1
                    retry_after_missing += response.status_code == 503 and "retry-after" not in response.headers

            await asyncio.gather(*(one_client(number) for number in range(6)))
        finally:
            postgresql.rollback()
        after = [(await client.get(f"/users/{other['id']}")).status_code for _ in range(20)]
        patched = await client.patch(f"/users/{locked['id']}", json={"name": "Patched"})

    assert statuses[503] > 0 and set(statuses) <= {200, 503}, statuses
    assert retry_after_missing == 0
    assert after == [200] * 20 and patched.status_code == 200, "recovered once the lock is gone"


CONCURRENT_INDEX = """-- An index on name, built while the API serves.
-- transactional: false
CREATE INDEX CONCURRENTLY users_name_idx ON users (name);
"""
CONCURRENT_INDEX_ROLLBACK = """-- transactional: false
DROP INDEX CONCURRENTLY users_name_idx;
"""


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_migration_applied_and_rolled_back_under_load_costs_no_request(
    client_factory: ClientFactory, owner_database_url: str, postgresql: psycopg.Connection, tmp_path: Path
) -> None:
    # As on a database made by sql/setup/, which the owner owns: the suite's clones are the superuser's.
    postgresql.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(OWNER.name)))
    postgresql.commit()
    for migration in resource_dir("migrations").iterdir():
        (tmp_path / migration.name).write_text(migration.read_text())
    (tmp_path / "9999_index_users_name.sql").write_text(CONCURRENT_INDEX)  # after every real migration
    (tmp_path / "9999_index_users_name.rollback.sql").write_text(CONCURRENT_INDEX_ROLLBACK)
    backend = get_backend(migrator.yoyo_url(owner_database_url, APP.name))
    indexes = "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_name_idx'"
    try:
        async with client_factory(raise_app_exceptions=False, pool_min_size=4, pool_max_size=4) as client:
            users = [await create(client, f"migrated{n}@example.com") for n in range(4)]
            load = Load(client, [f"/users/{user['id']}" for user in users] + ["/users?limit=2"])

            def migrate_then_roll_back() -> tuple[int, int]:
                time.sleep(0.3)
                migrations = read_migrations(str(tmp_path))
                backend.apply_migrations(backend.to_apply(migrations))
                built = backend.connection.execute(indexes).fetchone()[0]
                time.sleep(0.3)
                backend.rollback_migrations(backend.to_rollback(migrations)[:1])
                return built, backend.connection.execute(indexes).fetchone()[0]

            _, (built, left) = await asyncio.gather(load.run(2.0), asyncio.to_thread(migrate_then_roll_back))
    finally:
        backend.connection.close()

    assert (built, left) == (1, 0), "the index was built, then dropped"
    assert load.reads.total() > 100 and set(load.reads) == {200}, load.reads
    assert load.writes.total() > 20 and set(load.writes) == {201}, load.writes


def children(pid: int) -> list[int]:
    """The processes `pid` started that still run: uvicorn's workers, multiprocessing's resource tracker."""
    try:
        found = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except FileNotFoundError:  # `pid` itself has ended
        return []
    return [child for child in found if alive(child)]


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


class Traffic:
    """Threads making requests through the API until the block ends: when each answer came, what it was
    (status 0: no answer, the server being gone), and the users acknowledged with a 201.

    Each thread creates users; given `read_id`, every other request reads that user instead.
    """

    def __init__(self, url: str, read_id: int | None = None, threads: int = 4) -> None:
        self.url = url
        self.read_id = read_id
        self.answers: list[tuple[float, int, bool]] = []  # (time, status, has Retry-After)
        self.acknowledged: list[dict[str, object]] = []
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(threads)
        self.futures = [self.pool.submit(self.run, number) for number in range(threads)]

    def run(self, number: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            n = 0
            while not self.stopping.is_set():
                try:
                    if self.read_id is not None and n % 2 == 0:
                        response = client.get(f"/users/{self.read_id}")
                    else:
                        response = client.post("/users", json={"email": f"t{number}.{n}@example.com", "name": "T"})
                except httpx.TransportError:
                    self.answers.append((time.monotonic(), 0, False))
                else:
                    self.answers.append((time.monotonic(), response.status_code, "retry-after" in response.headers))
                    if response.status_code == 201:
                        self.acknowledged.append(response.json())
                n += 1
                time.sleep(0.005)

    def stop(self) -> None:
        """Let every thread finish its request and end; raises what one of them raised."""
        self.stopping.set()
        for future in self.futures:
            future.result(timeout=30)
        self.pool.shutdown()

    def __enter__(self) -> "Traffic":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def started() -> Iterator[list[Service]]:
    """The services a test starts: any still running when it ends (it failed) is killed, its workers too."""
    services: list[Service] = []
    yield services
    for service in services:
        if service.process.poll() is None:
            for child in children(service.process.pid):
                os.kill(child, signal.SIGKILL)
            service.stop(signal.SIGKILL)


@pytest.mark.slow
def test_sigterm_lets_requests_in_flight_finish_then_stops_both_servers_with_0(
    scratch_pgdata: Path, started: list[Service]
) -> None:
    service = Service(scratch_pgdata)
    started.append(service)
    user = service.client.post("/users", json={"email": "inflight@example.com", "name": "Before"}).json()
    postmaster = postmaster_pid(scratch_pgdata)
    with psycopg.connect(owner_url(scratch_pgdata)) as locker, ThreadPoolExecutor(8) as senders:
        locker.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user["id"],))
        url = f"{service.url}/users/{user['id']}"
        in_flight = [senders.submit(httpx.patch, url, json={"name": f"In flight {n}"}, timeout=30) for n in range(8)]
        waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted"  # one per request waiting for the row
        with psycopg.connect(owner_url(scratch_pgdata), autocommit=True) as watcher:
            assert wait_until(lambda: watcher.execute(waiting).fetchone() == (8,), 10), "8 requests in flight"
        service.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the API is stopping while the 8 wait
        locker.rollback()
        statuses = [future.result().status_code for future in in_flight]
    status = service.wait()

    assert statuses == [200] * 8, "every request in flight completes"
    assert status == 0, service.output
    assert postmaster is not None and not alive(postmaster), "the embedded PostgreSQL stops too"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("killed", "workers"), [("the API", 1), ("the API", 2), ("PostgreSQL's postmaster", 1)], ids=["api", "api-2w", "pg"]
)
def test_after_kill_9_the_next_start_serves_every_acknowledged_user(
    scratch_pgdata: Path, started: list[Service], killed: str, workers: int
) -> None:
    port = find_available_port()
    first = Service(scratch_pgdata, port=port, WORKERS=str(workers))
    started.append(first)
    its_workers = children(first.process.pid) if workers > 1 else []
    with Traffic(first.url) as writers:  # what was acknowledged is what counts: no answer is no promise
        time.sleep(1)
        if killed == "the API":
            first.process.kill()
            first.wait()
        else:
            postmaster = postmaster_pid(scratch_pgdata)
            assert postmaster is not None
            os.kill(postmaster, signal.SIGKILL)
            time.sleep(0.5)
        stopped = wait_until(lambda: not any(alive(pid) for pid in its_workers), 10)
    for pid in its_workers:  # so that a failure leaves nothing running
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert stopped and len(its_workers) >= (workers if workers > 1 else 0), "the workers stopped with their parent"
    if killed != "the API":
        first.stop(signal.SIGTERM)

    second = Service(scratch_pgdata, port=port)  # on the same port: nothing holds it
    started.append(second)
    stored = [second.client.get(f"/users/{user['id']}").json() for user in writers.acknowledged]
    assert second.stop(signal.SIGTERM) == 0, second.output

    assert writers.acknowledged and stored == writers.acknowledged, "every user acknowledged with a 201 is there"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_while_postgresql_is_down_only_503s_with_retry_after_and_2xx_within_1s_of_its_return(
    scratch_pgdata: Path, how: str
) -> None:
    port = find_available_port()
    with ExitStack() as running:  # on the way out, however the test ends: the traffic, then the API
        with EmbeddedCluster(scratch_pgdata, port, durable=False) as server:
            databases = server.service()
            migrator.apply(databases.owner_url, migrator.role_of(databases.app_url))
            api = ServedAPI({"DATABASE_URL": databases.app_url, "MIGRATE_ON_SERVE": "false"}, scratch_pgdata.parent)
            running.callback(api.stop, signal.SIGTERM)
            user = api.client.post("/users", json={"email": "down@example.com", "name": "Down"}).json()
            timeline = running.enter_context(Traffic(api.url, read_id=user["id"]))
            time.sleep(0.5)
            if how == "killed":
                postmaster = server.postmaster_pid()
                assert postmaster is not None
                os.kill(postmaster, signal.SIGKILL)
        # Stopped as the block ends (a fast shutdown), or found killed; down for a second either way.
        time.sleep(1)
        with EmbeddedCluster(scratch_pgdata, port, durable=False):
            back = time.monotonic()
            time.sleep(1.5)
            timeline.stop()
            api_still_serving = api.process.poll() is None

    statuses = Counter(status for _, status, _ in timeline.answers)
    assert statuses[503] > 0, "the outage was seen"
    assert set(statuses) <= {200, 201, 503}, statuses
    assert all(retry_after for _, status, retry_after in timeline.answers if status == 503)
    first_after = min(when for when, status, _ in timeline.answers if when > back and status < 300)
    assert first_after - back < 1, f"first 2xx {first_after - back:.2f}s after PostgreSQL was back"
    assert api_still_serving, "the same API process throughout"
