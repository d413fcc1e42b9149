"""`make bench-levers`: the CPU each optimisation lever saves, one request at a time, in-process.

No HTTP server and no load generator: the ASGI app is called directly, so the CPU time of this
process (time.process_time) per request is what the lever changes, without the noise of three
processes sharing two cores. Each lever is measured against its alternative on the same database,
in alternating rounds so that the machine's drift falls on both. Then users-api's whole app beside
raw-minimal's, per workload; and get-one with 64 requests at once on a pool of 10, where requests
wait for a connection, as under `make bench`'s load. Writes bench/results/levers-<timestamp>.md.
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
from api.db import Connection, Database, Db, Lease, keep_session
from api.edge import Edge
from api.queries import SQL
from api.routes.users import UserId
from api.settings import Settings
from bench import run as bench

ROUNDS = 7
CALLS = 1000

# users-api's page before this issue: 101 rows, each user's JSON built by json_build_object, joined in Python.
ROWS_OF_JSON = (
    "SELECT id, json_build_object('id', id, 'email', email, 'name', name, 'created_at', created_at, "
    "'updated_at', updated_at)::text AS body FROM users WHERE id > $1 ORDER BY id LIMIT $2"
)

App = Callable[..., Awaitable[None]]


async def call(app: App, method: str, path: str, state: dict[str, Any], query: bytes = b"", body: bytes = b"") -> int:
    """One request through the whole ASGI app; `state` stands for what the lifespan yielded."""
    headers = [(b"host", b"bench")]
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
    assert status in (200, 201), f"{method} {path}: {status}"
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


class TimedLease(Lease):
    """The lease as first written: the queue's wait and pool.acquire each under a timeout, waiting or not."""

    async def __aenter__(self) -> Connection:
        db = self.db
        async with asyncio.timeout(db.acquire_timeout):
            await db.queue.acquire()
        try:
            self.conn = await db.pool.acquire(timeout=db.acquire_timeout)
        except BaseException:
            db.queue.release()
            raise
        return self.conn


def variants(pool: "asyncpg.Pool[asyncpg.Record]") -> dict[str, FastAPI]:
    """Apps for GET /users/{id} that differ from users-api's way by one lever each."""

    async def get_one(user_id: int, db: Db) -> Response:  # users-api's way: a plain dependency, the route's block
        async with Lease(db) as conn:
            return Response(await conn.fetchval(SQL.get_user, user_id, column=1), media_type="application/json")

    async def yielded(request: Request) -> AsyncIterator[Connection]:  # the way before: a yield dependency
        db: Database = request.state.database
        async with Lease(db) as conn:
            yield conn

    async def get_yielded(user_id: int, conn: Annotated[Connection, Depends(yielded, scope="function")]) -> Response:
        return Response(await conn.fetchval(SQL.get_user, user_id, column=1), media_type="application/json")

    async def get_timed(user_id: int, db: Db) -> Response:  # both waits under a timer on every request
        async with TimedLease(db) as conn:
            return Response(await conn.fetchval(SQL.get_user, user_id, column=1), media_type="application/json")

    async def get_unqueued(user_id: int, db: Db) -> Response:  # asyncpg's own pool queue alone
        async with db.pool.acquire() as conn:
            return Response(await conn.fetchval(SQL.get_user, user_id, column=1), media_type="application/json")

    async def get_checked(user_id: UserId, db: Db) -> Response:  # users-api's checks of the id
        async with Lease(db) as conn:
            return Response(await conn.fetchval(SQL.get_user, user_id, column=1), media_type="application/json")

    async def get_undepended(user_id: int, request: Request) -> Response:  # the pool read without Depends
        db: Database = request.state.database
        async with Lease(db) as conn:
            return Response(await conn.fetchval(SQL.get_user, user_id, column=1), media_type="application/json")

    off: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    names = ("service", "yield", "included", "timed", "unqueued", "checked", "no depends", "edge")
    apps = {name: FastAPI(telemetry=off) for name in names}
    apps["telemetry on"] = FastAPI()
    for name in ("service", "telemetry on", "edge"):
        apps[name].add_api_route("/users/{user_id}", get_one)
    apps["edge"].add_middleware(Edge, metered=False)  # its trace id and body limit; no line, no metrics
    apps["no depends"].add_api_route("/users/{user_id}", get_undepended)
    apps["yield"].add_api_route("/users/{user_id}", get_yielded)
    apps["timed"].add_api_route("/users/{user_id}", get_timed)
    apps["unqueued"].add_api_route("/users/{user_id}", get_unqueued)
    apps["checked"].add_api_route("/users/{user_id}", get_checked)
    router = APIRouter(prefix="/users")
    router.add_api_route("/{user_id}", get_one)
    apps["included"].include_router(router)

    async def page(after: int, db: Db, joined: bool = False) -> Response:
        async with Lease(db) as conn:
            if joined:
                rows = await conn.fetch(ROWS_OF_JSON, after, 101)
                return Response(f"[{','.join(row['body'] for row in rows[:100])}]", media_type="application/json")
            found = await conn.fetchrow(SQL.list_users, after, 100)
            assert found is not None
            return Response(found["body"], media_type="application/json")

    apps["service"].add_api_route("/users", page)
    return apps


async def measure_levers(url: str) -> list[tuple[str, str, float, str, float]]:
    """(lever, without, µs, with, µs) rows."""
    rows: list[tuple[str, str, float, str, float]] = []
    default_pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    kept_pool = await asyncpg.create_pool(url, min_size=1, max_size=1, reset=keep_session)
    try:

        async def round_trip(pool: "asyncpg.Pool[asyncpg.Record]") -> None:
            conn = await pool.acquire()
            await conn.fetchval(SQL.get_user, 5)
            await pool.release(conn)

        a, b = await paired(lambda: round_trip(default_pool), lambda: round_trip(kept_pool))
        rows.append(("pool release without asyncpg's reset query", "default reset", a, "reset=keep_session", b))
        apps = variants(kept_pool)
        state = {"database": Database(kept_pool, acquire_timeout=2.0, ready_timeout=1.0, queue=asyncio.Semaphore(1))}

        def get(name: str) -> Callable[[], Awaitable[int]]:
            return lambda: call(apps[name], "GET", "/users/5", state)

        for lever, without, name, with_ in (
            ("the connection lent by a plain dependency and the route's `async with`", "yield dependency", "yield",
             "plain Depends + async with"),
            ("routes added to the app itself", "an included APIRouter", "included", "app.add_api_route"),
            ("FastAPI's native telemetry off while nothing is exported", "on, unconfigured", "telemetry on", "off"),
            ("a timer on the connection's waits only when there is a wait", "always", "timed", "only then"),
        ):  # fmt: skip
            a, b = await paired(get(name), get("service"))
            rows.append((f"{lever} (get one)", without, a, with_, b))

        for lever, without, name, with_ in (
            ("the first-come-first-served queue in front of asyncpg's pool", "pool alone", "unqueued", "queue + pool"),
            ("the id's checks (digits only, 1 to 2^63-1)", "plain int", "service", "UserId"),
        ):  # fmt: skip
            # What the contract costs, kept whatever it costs: here "without" is the cheaper side.
            a, b = await paired(get(name), get("checked" if name == "service" else "service"))
            rows.append((f"{lever} (get one)", without, a, with_, b))

        def page(joined: bool) -> Callable[[], Awaitable[int]]:
            query = b"after=0&joined=true" if joined else b"after=0"
            return lambda: call(apps["service"], "GET", "/users", state, query=query)

        a, b = await paired(page(joined=True), page(joined=False))
        rows.append(("a page as one row, json_agg in PostgreSQL (list of 100)", "101 rows joined", a, "one row", b))
    finally:
        await default_pool.close()
        await kept_pool.close()
    return rows


def bind(
    request: Callable[[App, dict[str, Any]], Awaitable[int]], app: App, state: dict[str, Any]
) -> Callable[[], Awaitable[int]]:
    return lambda: request(app, state)


async def measure_apps(url: str) -> list[tuple[str, float, float]]:
    """(workload, users-api µs, raw-minimal µs): the whole apps, in-process, lifespans running."""
    os.environ["DATABASE_URL"] = url  # raw-minimal reads it at import
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

    service = create_app(Settings(_env_file=None, database_url=url))
    async with (
        service.router.lifespan_context(service) as lifespan_state,
        raw_minimal.app.router.lifespan_context(raw_minimal.app),
    ):
        state = dict(lifespan_state or {})
        database: Database = state["database"]
        # The same pool, with a queue too wide ever to wait: requests wait in asyncpg's pool alone.
        unqueued = state | {"database": Database(database.pool, 2.0, 1.0, asyncio.Semaphore(10 * CONCURRENT))}
        apps: dict[str, tuple[App, dict[str, Any]]] = {
            "users-api": (service, state),
            "users-api without its queue": (service, unqueued),
            "raw-minimal": (raw_minimal.app, {}),
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
    rows = []
    for name in apps:
        ordered = sorted(latencies[name])
        p50, p99 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]
        rows.append((name, sorted(cpu[name])[ROUNDS // 2], p99 / p50))
    return rows


def main() -> int:
    started = datetime.now(UTC)
    with bench.database(bench.ROOT / ".pgdata-bench") as db:
        bench.seed(db, 10_000)
        levers = uvloop.run(measure_levers(db.url))
        whole = uvloop.run(measure_apps(db.url))
        contention = uvloop.run(measure_contention(db.url))
    lines = [
        f"# Optimisation levers, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Produced by `make bench-levers` (`python -m bench.levers`): CPU time of one process per request, "
        f"median of {ROUNDS} rounds of {CALLS} sequential requests, the two sides of each row in alternating "
        "rounds, ASGI app called in-process (no HTTP server, no load generator), on the embedded PostgreSQL "
        "with 10,000 seeded users.",
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
        *(f"| {workload} | {ours:.0f} | {raw:.0f} | {ours / raw:.2f} |" for workload, ours, raw in whole),
        "",
        f"Get one, {CONCURRENT} requests at once on users-api's pool of 10 connections ({EACH} each per round; "
        "the CPU is the median round's, the latency ratio over every request of every round):",
        "",
        "| app | CPU µs/request | ratio to raw-minimal | p99 / p50 latency |",
        "|---|--:|--:|--:|",
        *(f"| {name} | {us:.0f} | {us / contention[-1][1]:.2f} | {tail:.1f} |" for name, us, tail in contention),
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
