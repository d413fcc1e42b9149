"""`make bench-levers`: the CPU each optimisation lever saves, one request at a time, in-process.

No HTTP server and no load generator: the ASGI app is called directly, so the CPU time of this
process (time.process_time) per request is what the lever changes, without the noise of three
processes sharing two cores. Each lever is a pair of minimal apps of the bench's own (`variants`),
alike but for that lever, measured in alternating rounds on the same database so that the machine's
drift falls on both. Then users-api's whole app beside raw-minimal's, per workload; and get-one with
64 requests at once on a pool of 10, where requests wait for a connection, as under `make bench`'s
load. Writes bench/results/levers-<timestamp>.md.
"""

import asyncio
import gc
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import uvloop
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.telemetry import TelemetryConfig

from api.app import create_app
from api.queries import SQL
from api.settings import Settings
from bench import report
from bench import run as bench
from bench.baselines.raw_minimal import no_reset

ROUNDS = 7
CALLS = 1000

# The page as it was once built: 101 rows, each user's JSON made by json_build_object, joined in Python.
ROWS_OF_JSON = (
    "SELECT id, json_build_object('id', id, 'email', email, 'name', name, 'created_at', created_at, "
    "'updated_at', updated_at)::text AS body FROM users WHERE id > $1 ORDER BY id LIMIT $2"
)

App = Callable[..., Awaitable[None]]
PooledConnection = Any  # asyncpg's pooled connection proxy


async def call(
    app: App,
    method: str,
    path: str,
    state: dict[str, Any],
    query: bytes = b"",
    body: bytes = b"",
    token: str | None = None,
    ok: tuple[int, ...] = (200, 201),
) -> int:
    """One request through the whole ASGI app, with a bearer `token` if given; `state` stands for what the
    lifespan yielded. RuntimeError for a status not in `ok`."""
    headers = [(b"host", b"bench")]
    if token is not None:
        headers.append((b"authorization", b"Bearer " + token.encode()))
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": dict(state),
    }  # fmt: skip
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    if status not in ok:
        raise RuntimeError(f"{method} {path}: {status}, where one of {ok} was expected")
    return status


async def paired(
    first: Callable[[], Awaitable[object]], second: Callable[[], Awaitable[object]]
) -> tuple[float, float]:
    """Median CPU µs per call of each, after a warm-up, measured in alternating rounds."""
    for _ in range(200):
        await first()
        await second()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(ROUNDS):
        for action, found in zip((first, second), samples, strict=True):
            gc.collect()
            started = time.process_time()
            for _ in range(CALLS):
                await action()
            found.append((time.process_time() - started) / CALLS * 1e6)
    return sorted(samples[0])[ROUNDS // 2], sorted(samples[1])[ROUNDS // 2]


class Pooled:
    """A variant's database: the pool, and a first-come-first-served queue in front of it, one slot per connection.

    What users-api's api/db.py keeps, written again here in its fewest lines, so that each lever is
    measured on an app that differs from another by that lever alone, and the bench depends on no
    module inside api/.
    """

    def __init__(self, pool: "asyncpg.Pool[asyncpg.Record]") -> None:
        self.pool = pool
        self.queue = asyncio.Semaphore(pool.get_max_size())


ACQUIRE_TIMEOUT = 2.0


class BenchLease:
    """One pooled connection for an `async with` block, behind the queue, which is timed only when there is a wait."""

    __slots__ = ("conn", "db")

    def __init__(self, db: Pooled) -> None:
        self.db = db

    async def __aenter__(self) -> PooledConnection:
        if self.db.queue.locked():
            async with asyncio.timeout(ACQUIRE_TIMEOUT):
                await self.db.queue.acquire()
        else:
            await self.db.queue.acquire()
        try:
            self.conn = await self.db.pool.acquire()
        except BaseException:
            self.db.queue.release()
            raise
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.db.pool.release(self.conn)
        finally:
            self.db.queue.release()


class TimedBenchLease(BenchLease):
    """Both waits under a timer on every request, waiting or not."""

    async def __aenter__(self) -> PooledConnection:
        async with asyncio.timeout(ACQUIRE_TIMEOUT):
            await self.db.queue.acquire()
        try:
            self.conn = await self.db.pool.acquire(timeout=ACQUIRE_TIMEOUT)
        except BaseException:
            self.db.queue.release()
            raise
        return self.conn


async def pooled(request: Request) -> Pooled:
    db: Pooled = request.state.pooled
    return db


PooledDb = Annotated[Pooled, Depends(pooled)]


def json_text(text: str) -> Response:
    return Response(text, media_type="application/json")


def variants() -> dict[str, FastAPI]:
    """Apps for GET /users/{id} that differ from "service" (users-api's way) by one lever each.

    Each reads its `Pooled` from the request's state, as the caller's lifespan state: {"pooled": ...}.
    """

    async def get_one(user_id: int, db: PooledDb) -> Response:  # a plain dependency, the route's own block
        async with BenchLease(db) as conn:
            return json_text(await conn.fetchval(SQL.get_user, user_id, column=1))

    async def lent(request: Request) -> AsyncIterator[PooledConnection]:  # the connection lent by a yield dependency
        async with BenchLease(request.state.pooled) as conn:
            yield conn

    async def get_lent(user_id: int, conn: Annotated[PooledConnection, Depends(lent, scope="function")]) -> Response:
        return json_text(await conn.fetchval(SQL.get_user, user_id, column=1))

    async def get_timed(user_id: int, db: PooledDb) -> Response:
        async with TimedBenchLease(db) as conn:
            return json_text(await conn.fetchval(SQL.get_user, user_id, column=1))

    async def get_unqueued(user_id: int, db: PooledDb) -> Response:  # asyncpg's own pool queue alone
        async with db.pool.acquire() as conn:
            return json_text(await conn.fetchval(SQL.get_user, user_id, column=1))

    async def get_undepended(user_id: int, request: Request) -> Response:  # the pool read without Depends
        async with BenchLease(request.state.pooled) as conn:
            return json_text(await conn.fetchval(SQL.get_user, user_id, column=1))

    async def page(after: int, db: PooledDb, joined: bool = False) -> Response:
        async with BenchLease(db) as conn:
            if joined:
                rows = await conn.fetch(ROWS_OF_JSON, after, 101)
                return json_text(f"[{','.join(row['body'] for row in rows[:100])}]")
            found = await conn.fetchrow(SQL.list_users, after, 100)
            return json_text(found["body"])

    off: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    routes: dict[str, Callable[..., Awaitable[Response]]] = {
        "service": get_one, "yield": get_lent, "timed": get_timed, "unqueued": get_unqueued,
        "no depends": get_undepended, "telemetry on": get_one,
    }  # fmt: skip
    apps = {name: FastAPI(telemetry=None if name == "telemetry on" else off) for name in routes}
    for name, endpoint in routes.items():
        apps[name].add_api_route("/users/{user_id}", endpoint)
    apps["service"].add_api_route("/users", page)
    router = APIRouter(prefix="/users")
    router.add_api_route("/{user_id}", get_one)
    apps["included"] = FastAPI(telemetry=off)
    apps["included"].include_router(router)
    return apps


async def measure_levers(url: str) -> list[tuple[str, str, float, str, float]]:
    """(lever, without, µs, with, µs) rows."""
    rows: list[tuple[str, str, float, str, float]] = []
    default_pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    kept_pool = await asyncpg.create_pool(url, min_size=1, max_size=1, reset=no_reset)
    try:

        async def round_trip(pool: "asyncpg.Pool[asyncpg.Record]") -> None:
            conn = await pool.acquire()
            await conn.fetchval(SQL.get_user, 5)
            await pool.release(conn)

        a, b = await paired(lambda: round_trip(default_pool), lambda: round_trip(kept_pool))
        rows.append(("pool release without asyncpg's reset query", "default reset", a, "no reset", b))
        apps = variants()
        state = {"pooled": Pooled(kept_pool)}

        def get(name: str) -> Callable[[], Awaitable[int]]:
            return lambda: call(apps[name], "GET", "/users/5", state)

        for lever, without, name, with_ in LEVERS:
            a, b = await paired(get(name), get("service"))
            rows.append((f"{lever} (get one)", without, a, with_, b))
        for part, without, name, with_ in COSTS:
            # What the contract costs, kept whatever it costs: here "without" is the cheaper side.
            a, b = await paired(get(name), get("service"))
            rows.append((f"{part} (get one)", without, a, with_, b))

        def page(joined: bool) -> Callable[[], Awaitable[int]]:
            query = b"after=0&joined=true" if joined else b"after=0"
            return lambda: call(apps["service"], "GET", "/users", state, query=query)

        a, b = await paired(page(joined=True), page(joined=False))
        rows.append(("a page as one row, json_agg in PostgreSQL (list of 100)", "101 rows joined", a, "one row", b))
    finally:
        await default_pool.close()
        await kept_pool.close()
    return rows


# (lever, without, the variant without it, with): "service" has every lever.
LEVERS = [
    ("the connection lent by a plain dependency and the route's `async with`", "yield dependency", "yield",
     "plain Depends + async with"),
    ("routes added to the app itself", "an included APIRouter", "included", "app.add_api_route"),
    ("FastAPI's native telemetry off while nothing is exported", "on, unconfigured", "telemetry on", "off"),
    ("a timer on the connection's waits only when there is a wait", "always", "timed", "only then"),
]  # fmt: skip
# (part of the contract, without, the variant without it, with): kept whatever they cost.
COSTS = [
    ("the first-come-first-served queue in front of asyncpg's pool", "pool alone", "unqueued", "queue + pool"),
    ("the pool injected with `Depends`", "read from request.state", "no depends", "Depends"),
]


def bind(
    request: Callable[[App, dict[str, Any]], Awaitable[int]], app: App, state: dict[str, Any]
) -> Callable[[], Awaitable[int]]:
    return lambda: request(app, state)


async def measure_apps(url: str) -> list[tuple[str, float, float]]:
    """(workload, users-api µs, raw-minimal µs): the whole apps, in-process, lifespans running."""
    os.environ["DATABASE_URL"] = url  # raw-minimal reads it in its lifespan
    from bench.baselines import raw_minimal

    service = create_app(Settings(_env_file=None, database_url=url))
    rows = []
    tag = f"{os.getpid()}.{time.time_ns()}"
    counter = iter(range(10**9))
    async with (
        service.router.lifespan_context(service) as state,
        raw_minimal.app.router.lifespan_context(raw_minimal.app),
    ):
        requests: dict[str, Callable[[App, dict[str, Any]], Awaitable[int]]] = {
            "get": lambda app, s: call(app, "GET", "/users/5", s),
            "create": lambda app, s: call(app, "POST", "/users", s, body=json.dumps(
                {"email": f"lever{tag}.{next(counter)}@example.com", "name": "Lever"}).encode()),
            "list_start": lambda app, s: call(app, "GET", "/users", s, query=b"limit=100&after=0"),
        }  # fmt: skip
        for workload, request in requests.items():
            ours, raw = await paired(bind(request, service, dict(state or {})), bind(request, raw_minimal.app, {}))
            rows.append((workload, ours, raw))
    return rows


CONCURRENT = 64  # requests at once, as wrk's connections in `make bench`
EACH = 40  # requests each of them makes per round
POOL = 10  # connections, as users-api's POOL_MAX_SIZE and raw-minimal's pool


async def contended(app: App, state: dict[str, Any], latencies: list[float]) -> None:
    """CONCURRENT clients each making EACH get-one requests; every request's wall time lands in `latencies`."""

    async def client(number: int) -> None:
        for n in range(EACH):
            started = time.perf_counter()
            await call(app, "GET", f"/users/{1 + (number * EACH + n) % 10_000}", state)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client(number) for number in range(CONCURRENT)))


async def measure_contention(url: str) -> list[tuple[str, float, float]]:
    """(app, CPU µs/request, p99/p50 of latency): get-one with more requests at once than connections."""
    os.environ["DATABASE_URL"] = url  # raw-minimal reads it in its lifespan
    from bench.baselines import raw_minimal

    service = create_app(Settings(_env_file=None, database_url=url, pool_max_size=POOL))
    pool = await asyncpg.create_pool(url, min_size=POOL, max_size=POOL, reset=no_reset)
    lever = variants()
    try:
        async with (
            service.router.lifespan_context(service) as lifespan_state,
            raw_minimal.app.router.lifespan_context(raw_minimal.app),
        ):
            apps: dict[str, tuple[App, dict[str, Any]]] = {
                "users-api": (service, dict(lifespan_state or {})),
                "raw-minimal": (raw_minimal.app, {}),
                "the queue's lever: queue + pool": (lever["service"], {"pooled": Pooled(pool)}),
                "the queue's lever: pool alone": (lever["unqueued"], {"pooled": Pooled(pool)}),
            }
            cpu: dict[str, list[float]] = {name: [] for name in apps}
            latencies: dict[str, list[float]] = {name: [] for name in apps}
            for app, app_state in apps.values():  # warm-up
                await contended(app, app_state, [])
            for _ in range(ROUNDS):
                for name, (app, app_state) in apps.items():
                    gc.collect()
                    started = time.process_time()
                    await contended(app, app_state, latencies[name])
                    cpu[name].append((time.process_time() - started) / (CONCURRENT * EACH) * 1e6)
    finally:
        await pool.close()
    rows = []
    for name in apps:
        ordered = sorted(latencies[name])
        p50, p99 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]
        rows.append((name, sorted(cpu[name])[ROUNDS // 2], p99 / p50))
    return rows


def main() -> int:
    started = datetime.now(UTC)
    with bench.database(bench.ROOT / ".pgdata-bench") as db:
        bench.populate(db, 10_000)
        levers = uvloop.run(measure_levers(db.url))
        whole = uvloop.run(measure_apps(db.url))
        contention = uvloop.run(measure_contention(db.url))
    raw = dict((name, us) for name, us, _ in contention)["raw-minimal"]
    lines = [
        f"# Optimisation levers, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Produced by `make bench-levers` (`python -m bench.levers`) at {report.commit()}: CPU time of one "
        f"process per request, median of {ROUNDS} rounds of {CALLS} sequential requests, the two sides of each row "
        "in alternating rounds, ASGI app called in-process (no HTTP server, no load generator), on the embedded "
        "PostgreSQL with 10,000 seeded users. Each lever is a pair of the bench's minimal apps "
        "(bench/levers.py, `variants`), alike but for it.",
        "",
        "| lever | without | CPU µs/request | with | CPU µs/request | saved |",
        "|---|---|--:|---|--:|--:|",
        *(f"| {lever} | {a} | {a_us:.0f} | {b} | {b_us:.0f} | {100 * (a_us - b_us) / a_us:.0f}% |"
          for lever, a, a_us, b, b_us in levers),
        "",
        "The whole apps, users-api beside raw-minimal (bench/baselines/raw_minimal.py):",
        "",
        "| workload | users-api µs/request | raw-minimal µs/request | ratio |",
        "|---|--:|--:|--:|",
        *(f"| {workload} | {ours:.0f} | {raw_us:.0f} | {ours / raw_us:.2f} |" for workload, ours, raw_us in whole),
        "",
        f"Get one, {CONCURRENT} requests at once on a pool of {POOL} connections ({EACH} each per round; the CPU is "
        "the median round's, the latency ratio over every request of every round):",
        "",
        "| app | CPU µs/request | ratio to raw-minimal | p99 / p50 latency |",
        "|---|--:|--:|--:|",
        *(f"| {name} | {us:.0f} | {us / raw:.2f} | {tail:.1f} |" for name, us, tail in contention),
        "",
    ]  # fmt: skip
    publish("levers", started, lines)
    return 0


def publish(kind: str, started: datetime, lines: list[str]) -> None:
    """Write bench/results/<kind>-<timestamp>.md, and show it."""
    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    out = bench.RESULTS / f"{kind}-{started:%Y%m%dT%H%M%SZ}.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    bench.progress(f"wrote {out.relative_to(bench.ROOT)}")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
