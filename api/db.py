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
    """The pool and how long requests wait on it."""

    pool: "asyncpg.Pool[asyncpg.Record]"
    acquire_timeout: float
    ready_timeout: float


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
        server_settings={"application_name": "users-api"},
    )


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
            yield {"database": Database(pool, settings.pool_acquire_timeout, settings.ready_timeout)}
        finally:
            await close_pool(pool, settings.pool_close_timeout)

    return pool_lifespan


async def connection(request: Request) -> AsyncIterator[Connection]:
    """One pooled connection for the request; an exhausted pool gives a 503, not an endless wait."""
    db: Database = request.state.database
    try:
        conn = await db.pool.acquire(timeout=db.acquire_timeout)
    except TimeoutError:
        raise Unavailable("all database connections are busy; retry shortly") from None
    try:
        yield conn
    finally:
        await db.pool.release(conn)


# scope="function": FastAPI >= 0.118 would otherwise run the release after the response is sent,
# keeping the connection checked out while the client reads.
Conn = Annotated[Connection, Depends(connection, scope="function")]
