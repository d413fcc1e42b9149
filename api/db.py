"""The asyncpg pool: opened and closed by the lifespan, lent to each request through `Conn`."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, TypedDict

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from fastapi import Depends, FastAPI, Request

from api.problems import Unavailable
from api.settings import Settings

log = logging.getLogger("users_api")

if TYPE_CHECKING:
    Connection = PoolConnectionProxy[asyncpg.Record]
else:  # the stubs make it generic; the class is not subscriptable at run time
    Connection = PoolConnectionProxy


@dataclass(frozen=True, slots=True)
class Database:
    """The pool, the queue in front of it, and how long requests wait."""

    pool: "asyncpg.Pool[asyncpg.Record]"
    acquire_timeout: float
    ready_timeout: float
    # First come, first served: asyncpg's pool queue lets a newcomer take a connection that was
    # being handed to a request already waiting, which sends that one to the back of the queue;
    # under load the unlucky few waited 8x the median (bench/levers.md). asyncio.Semaphore hands a
    # freed slot to the longest waiter. One slot per pooled connection.
    queue: asyncio.Semaphore


class State(TypedDict):
    database: Database


async def open_pool(settings: Settings) -> "asyncpg.Pool[asyncpg.Record]":
    """A pool sized and timed by the settings; fails if PostgreSQL cannot be reached."""
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        command_timeout=settings.command_timeout,
        statement_cache_size=settings.statement_cache_size,
        # UTC: the JSON the query files build writes times in the session's zone (RFC 3339, +00:00).
        server_settings={"application_name": "users-api", "TimeZone": "UTC"},
        reset=keep_session,
    )


async def keep_session(conn: asyncpg.Connection) -> None:
    """Replace asyncpg's reset query, a second round trip after every request, with nothing.

    That query (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) undoes session
    state. The query files run one statement each, in autocommit, and take no advisory lock,
    declare no cursor, LISTEN to nothing and SET nothing: there is nothing to undo. A transaction
    left open is still rolled back: asyncpg does that itself before calling this.
    """


async def close_pool(pool: "asyncpg.Pool[asyncpg.Record]", grace: float) -> None:
    """Let requests in flight finish for up to `grace` seconds, then cut the rest."""
    try:
        await asyncio.wait_for(pool.close(), grace)
    except TimeoutError:
        log.warning("pool did not close within %.1fs; terminating its connections", grace)
        pool.terminate()


def lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[State]]:
    """The app's lifespan: the pool exists exactly while the app serves."""

    @asynccontextmanager
    async def pool_lifespan(app: FastAPI) -> AsyncIterator[State]:
        pool = await open_pool(settings)
        try:
            queue = asyncio.Semaphore(settings.pool_max_size)
            yield {"database": Database(pool, settings.pool_acquire_timeout, settings.ready_timeout, queue)}
        finally:
            await close_pool(pool, settings.pool_close_timeout)

    return pool_lifespan


BUSY = "all database connections are busy; retry shortly"


async def connection(request: Request) -> AsyncIterator[Connection]:
    """One pooled connection for the request; an exhausted pool gives a 503, not an endless wait."""
    db: Database = request.state.database
    try:
        if db.queue.locked():  # the timer only when there is a wait
            async with asyncio.timeout(db.acquire_timeout):
                await db.queue.acquire()
        else:
            await db.queue.acquire()
    except TimeoutError:
        raise Unavailable(BUSY) from None
    try:
        conn = await db.pool.acquire(timeout=db.acquire_timeout)
    except TimeoutError:
        db.queue.release()
        raise Unavailable(BUSY) from None
    except BaseException:
        db.queue.release()
        raise
    try:
        yield conn
    finally:
        try:
            await db.pool.release(conn)
        finally:
            db.queue.release()


# scope="function": FastAPI >= 0.118 would otherwise run the release after the response is sent,
# keeping the connection checked out while the client reads.
Conn = Annotated[Connection, Depends(connection, scope="function")]
