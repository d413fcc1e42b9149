"""`make bench-levers`: the CPU each optimisation lever saves, one request at a time, in-process.

No HTTP server and no load generator: the ASGI app is called directly, so the CPU time of this
process (time.process_time) per request is what the lever changes, without the noise of three
processes sharing two cores. Each lever is measured against its alternative on the same database.
Writes bench/results/levers-<timestamp>.md.
"""

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import uvloop
from fastapi import Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute

from api.db import Conn, Connection, Database, keep_session
from api.queries import SQL
from api.schemas import UserPublic
from bench import run as bench

ROUNDS = 5
CALLS = 2000

# The same page as sql/list_users.sql, as plain columns for the Python-side serialisation.
LIST_COLUMNS = "SELECT id, email, name, created_at, updated_at FROM users WHERE id > $1 ORDER BY id LIMIT $2"


async def call(app: Callable[..., Awaitable[None]], path: str, state: dict[str, Any]) -> int:
    """One GET through the whole ASGI app; `state` stands for what the lifespan would have yielded."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": [],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": dict(state),
    }  # fmt: skip
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def cpu_per_call(action: Callable[[], Awaitable[object]]) -> float:
    """Median over rounds of CPU µs per call, after a warm-up."""
    for _ in range(200):
        await action()
    samples = []
    for _ in range(ROUNDS):
        gc.collect()
        started = time.process_time()
        for _ in range(CALLS):
            await action()
        samples.append((time.process_time() - started) / CALLS * 1e6)
    return sorted(samples)[len(samples) // 2]


LENT = "bench.connection"


class ReturnsConnection(APIRoute):
    """The lever tried and not kept: a plain dependency lends the connection, this route class returns it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_then_return(request: Request) -> Response:
            try:
                return await handle(request)
            finally:
                conn = request.scope.pop(LENT, None)
                if conn is not None:
                    await request.state.database.pool.release(conn)

        return handle_then_return


def apps(pool: "asyncpg.Pool[asyncpg.Record]") -> dict[str, FastAPI]:
    """The service's way (api.db.Conn, a yield dependency) beside the alternatives, on the same query files."""
    service = FastAPI()

    @service.get("/users/{user_id}")
    async def get_user(user_id: int, conn: Conn) -> Response:
        return Response(await conn.fetchval(SQL.get_user, user_id), media_type="application/json")

    @service.get("/users")
    async def list_pg_json(conn: Conn, after: int = 0) -> Response:
        rows = await conn.fetch(SQL.list_users, after, 101)
        return Response(f"[{','.join(row['body'] for row in rows[:100])}]", media_type="application/json")

    @service.get("/users-pydantic", response_model=list[UserPublic])
    async def list_pydantic(conn: Conn, after: int = 0) -> Any:
        rows = await conn.fetch(LIST_COLUMNS, after, 101)
        return [UserPublic(**row) for row in rows[:100]]

    # The same work both ways (acquire, one query, release): only how the connection goes back differs.
    async def yielded(request: Request) -> AsyncIterator[Connection]:
        conn = await pool.acquire()
        try:
            yield conn
        finally:
            await pool.release(conn)

    with_yield = FastAPI()

    @with_yield.get("/users/{user_id}")
    async def get_yielded(user_id: int, conn: Annotated[Connection, Depends(yielded, scope="function")]) -> Response:
        return Response(await conn.fetchval(SQL.get_user, user_id), media_type="application/json")

    async def lent(request: Request) -> Connection:
        conn = await pool.acquire()
        request.scope[LENT] = conn
        return conn

    route_class = FastAPI()
    route_class.router.route_class = ReturnsConnection

    @route_class.get("/users/{user_id}")
    async def get_lent(user_id: int, conn: Annotated[Connection, Depends(lent)]) -> Response:
        return Response(await conn.fetchval(SQL.get_user, user_id), media_type="application/json")

    return {"service": service, "yield": with_yield, "route class": route_class}


async def measure(url: str) -> list[tuple[str, str, float, str, float]]:
    """(lever, baseline, µs, with the lever, µs) rows."""
    rows: list[tuple[str, str, float, str, float]] = []
    default_pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    kept_pool = await asyncpg.create_pool(url, min_size=1, max_size=1, reset=keep_session)
    try:

        async def round_trip(pool: "asyncpg.Pool[asyncpg.Record]") -> None:
            conn = await pool.acquire()
            await conn.fetchval(SQL.get_user, 5)
            await pool.release(conn)

        rows.append((
            "pool release without asyncpg's reset query",
            "default reset", await cpu_per_call(lambda: round_trip(default_pool)),
            "reset=keep_session", await cpu_per_call(lambda: round_trip(kept_pool)),
        ))  # fmt: skip
        built = apps(kept_pool)
        state = {"database": Database(kept_pool, acquire_timeout=2.0, ready_timeout=1.0, queue=asyncio.Semaphore(1))}
        service, yielded, returned = built["service"], built["yield"], built["route class"]
        rows.append((
            "connection given back by a route class, not a yield dependency (get one; tried, not kept)",
            "Depends(yield, scope=function)", await cpu_per_call(lambda: call(yielded, "/users/5", state)),
            "route class", await cpu_per_call(lambda: call(returned, "/users/5", state)),
        ))  # fmt: skip
        rows.append((
            "PostgreSQL writes the JSON (list of 100)",
            "rows -> pydantic -> FastAPI JSON", await cpu_per_call(lambda: call(service, "/users-pydantic", state)),
            "json_build_object text joined", await cpu_per_call(lambda: call(service, "/users", state)),
        ))  # fmt: skip
    finally:
        await default_pool.close()
        await kept_pool.close()
    return rows


def main() -> int:
    started = datetime.now(UTC)
    with bench.database(bench.ROOT / ".pgdata-bench") as db:
        bench.seed(db, 10_000)
        rows = uvloop.run(measure(db.url))
    lines = [
        f"# Optimisation levers, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Produced by `make bench-levers` (`python -m bench.levers`): CPU time of one process per request, "
        f"median of {ROUNDS} rounds of {CALLS} sequential requests, ASGI app called in-process (no HTTP server, "
        "no load generator), on the embedded PostgreSQL with 10,000 seeded users.",
        "",
        "| lever | without | CPU µs/request | with | CPU µs/request | saved |",
        "|---|---|--:|---|--:|--:|",
        *(f"| {lever} | {a} | {a_us:.0f} | {b} | {b_us:.0f} | {100 * (a_us - b_us) / a_us:.0f}% |"
          for lever, a, a_us, b, b_us in rows),
        "",
    ]  # fmt: skip
    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    out = bench.RESULTS / f"levers-{started:%Y%m%dT%H%M%SZ}.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    bench.progress(f"wrote {out.relative_to(bench.ROOT)}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
