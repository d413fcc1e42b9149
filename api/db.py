"""The asyncpg pool: opened and closed by the lifespan, given to each route through `Db`."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypedDict, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from fastapi import Depends, FastAPI, Request

from api import metrics
from api.problems import Unavailable
from api.settings import Settings

log = logging.getLogger("users_api")
T = TypeVar("T")

if TYPE_CHECKING:
    Connection = PoolConnectionProxy[asyncpg.Record]
else:  # the stubs make it generic; the class is not subscriptable at run time
    Connection = PoolConnectionProxy


@dataclass(slots=True)
class Database:
    """The pool, the queue in front of it, how long requests wait, and how many wait now."""

    pool: "asyncpg.Pool[asyncpg.Record]"
    acquire_timeout: float
    ready_timeout: float
    # First come, first served: asyncpg's pool queue lets a newcomer take a connection that was
    # being handed to a request already waiting, which sends that one to the back of the queue;
    # under load the unlucky few waited 8x the median (bench/levers.md). asyncio.Semaphore hands a
    # freed slot to the longest waiter. One slot per pooled connection.
    queue: asyncio.Semaphore
    metered: bool = True  # METRICS: each wait goes to db_client_connection_wait_time_seconds
    waiting: int = 0  # requests in the queue now: db_client_connection_pending_requests

    def connection(self) -> "Lease":
        """`async with db.connection() as conn:` one pooled connection for the block; 503 if none frees up."""
        return Lease(self)

    async def fetchval(self, query: str, *args: object, read: bool = False) -> Any:
        """The first value of one statement's first row (None if no row); see `again`."""
        try:
            async with Lease(self) as conn:
                return await conn.fetchval(query, *args)
        except ENDED as error:
            return await self.again(lambda conn: conn.fetchval(query, *args), error, read=read)

    async def fetchrow(self, query: str, *args: object, read: bool = False) -> "asyncpg.Record | None":
        """One statement's first row (None if none); see `again`."""
        try:
            async with Lease(self) as conn:
                return await conn.fetchrow(query, *args)
        except ENDED as error:
            return await self.again(lambda conn: conn.fetchrow(query, *args), error, read=read)

    async def again(self, statement: Callable[[Connection], Awaitable[T]], error: Exception, *, read: bool) -> T:
        """`statement` once more on another connection, if `error` says the first cannot have run it.

        PostgreSQL ends idle connections (a restart, `pg_terminate_backend`, an idle timeout, a
        failover); the pool learns it only when a statement is tried. A statement asyncpg refused to
        send is run again on another connection; so is a read whose connection was lost with the
        statement perhaps sent (`read=True`: running it twice changes nothing). A write that may have
        reached the server is not: the caller gets the error, a 503. The first try is written out in
        fetchval and fetchrow, with no closure and no loop: that is every request's path.
        """
        retries = 0
        while True:
            # Each failed try used up one ended connection (asyncpg closes it), so one more try than
            # the pool has connections reaches a fresh one even when the server ended them all.
            retries += 1
            lost = isinstance(error, asyncpg.ConnectionDoesNotExistError)  # perhaps after it was sent
            if retries > self.pool.get_max_size() or not (_not_sent(error) or (read and lost)):
                raise error
            log.info("connection ended by the server; statement run again on another: %s", error)
            try:
                async with Lease(self) as conn:
                    return await statement(conn)
            except ENDED as ended:
                error = ended


class Lease:
    """One connection of the pool, held for an `async with` block and given back when it ends.

    A class rather than a generator-based context manager, held by Database's methods rather than
    lent by a `yield` dependency: FastAPI runs an exit stack for the latter on every request
    (bench/levers.md).
    """

    __slots__ = ("conn", "db")

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __aenter__(self) -> "Connection":
        db = self.db
        started = time.perf_counter()
        if db.queue.locked():  # the timer only when there is a wait
            db.waiting += 1
            try:
                async with asyncio.timeout(db.acquire_timeout):
                    await db.queue.acquire()
            except TimeoutError:
                if db.metered:
                    metrics.TALLY.wait(time.perf_counter() - started)
                raise Unavailable(BUSY, "pool_timeout") from None
            finally:
                db.waiting -= 1
        else:
            await db.queue.acquire()
        try:
            # No timeout here: holding a slot of the queue means a connection is idle or may be
            # opened, and opening one is bounded by the pool's own connect timeout (open_pool).
            self.conn: Connection = await db.pool.acquire()
        except BaseException:
            db.queue.release()
            raise
        if db.metered:
            metrics.TALLY.wait(time.perf_counter() - started)
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.db.pool.release(self.conn)
        finally:
            self.db.queue.release()


# What a statement raises when its connection was ended by the server, before or while it ran.
ENDED = (asyncpg.InternalClientError, asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError)


def _not_sent(error: Exception) -> bool:
    """asyncpg refused to send the statement, the connection having been ended by the server.

    asyncpg has no class of its own for this (MagicStack/asyncpg#1069): an idle connection that
    received the server's FATAL is left in its ERROR_CONSUME state (2), and the next statement is
    refused with InternalClientError before any byte of it is written. tests/test_faults.py fails
    if a new asyncpg words this differently.
    """
    message = str(error)
    if isinstance(error, asyncpg.InternalClientError):
        return "another operation (2) is in progress" in message or message == "not connected"
    return isinstance(error, asyncpg.InterfaceError) and "connection is closed" in message


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
        timeout=settings.pool_acquire_timeout,  # opening a connection: a request waits no longer than for one
    )


async def keep_session(conn: asyncpg.Connection) -> None:
    """Replace asyncpg's reset query, a second round trip after every request, with nothing.

    That query (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) undoes session
    state. The query files run one statement each, in autocommit, take advisory locks only for their
    transaction (released as it ends), declare no cursor, LISTEN to nothing and SET nothing: there is
    nothing to undo. A transaction left open is still rolled back: asyncpg does that itself before
    calling this.
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
            database = Database(pool, settings.pool_acquire_timeout, settings.ready_timeout, queue, settings.metrics)
            yield {"database": database}
        finally:
            await close_pool(pool, settings.pool_close_timeout)

    return pool_lifespan


BUSY = "all database connections are busy; retry shortly"


async def database(request: Request) -> Database:
    """The app's database: its pool and the queue in front of it, as the lifespan made them."""
    db: Database = request.state.database
    return db


# A plain dependency: a route runs its statement with `await db.fetchval(...)` (or fetchrow), which
# holds a connection for that statement only, so it is back in the pool before the response is written.
Db = Annotated[Database, Depends(database)]
