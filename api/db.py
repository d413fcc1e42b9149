"""The asyncpg pool: opened and closed by the lifespan, given to each route through `Db`.

What goes wrong in the database leaves as this module's own errors: `Unavailable` (a retry may
succeed: a 503) and `Refused` (PostgreSQL refused a value: nothing was stored; `Conflict` when a unique
index did). The HTTP layer (api/problems.py) decides what a client is told of each. Anything else, an
error of the statement itself, leaves as it is: a bug, which the edge answers with a 500.
"""

import asyncio
import errno
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, TypedDict, TypeVar

import asyncpg
from fastapi import Depends, FastAPI, Request

from api import metrics
from api.coalesced import Coalesced, Connection
from api.metrics import UnavailableReason
from api.queries import SQL
from api.settings import Settings

if TYPE_CHECKING:
    from api.replicas import Replicas

log = logging.getLogger(__name__)
T = TypeVar("T")


class Unavailable(Exception):
    """The database cannot serve this statement now; a retry may succeed. `reason` labels the 503s' metric."""

    def __init__(self, reason: UnavailableReason, cause: str) -> None:
        super().__init__(cause)
        self.reason = reason


class Refused(Exception):
    """PostgreSQL refused a value or a constraint held against it; nothing was stored."""

    def __init__(self, cause: str, constraint: str | None = None) -> None:
        super().__init__(cause)
        self.constraint = constraint  # the constraint that refused it, when PostgreSQL names one


class Conflict(Refused):
    """Another row holds a value that must be unique: `constraint` names the unique index."""


@dataclass(slots=True)
class Database:
    """The pool, the queue in front of it, how long requests wait, and how many wait now."""

    pool: "asyncpg.Pool[asyncpg.Record]"
    acquire_timeout: float
    ready_timeout: float
    # First come, first served: asyncpg's pool queue lets a newcomer take a connection that was
    # being handed to a request already waiting, which sends that one to the back of the queue;
    # under load the unlucky few waited many times the median. asyncio.Semaphore hands a freed slot
    # to the longest waiter. One slot per pooled connection (docs/levers.md, "first-come-first-served queue").
    queue: asyncio.Semaphore
    metered: bool = True  # METRICS: each wait goes to db_client_connection_wait_time_seconds
    waiting: int = 0  # requests in the queue now: db_client_connection_pending_requests
    # COALESCE_READS: the get-ones, and the lookups by email, waiting at once sent as one statement
    users_by_id: Coalesced | None = None
    users_by_email: Coalesced | None = None
    creates: Coalesced | None = None  # COALESCE_CREATES: the plain creates waiting at once, in one INSERT
    # DATABASE_REPLICA_URLS: the hot standbys that take reads (api/replicas.py); None: all on this one
    replicas: "Replicas | None" = None
    role: str = "primary"  # the server's role, as users_api_db_statements_total labels it
    sent: int = 0  # statements sent since metrics last counted them

    def sizes(self) -> tuple[int, int, int]:
        """Connections open, idle, and the most the pool may open: what the pool's gauges show."""
        return self.pool.get_size(), self.pool.get_idle_size(), self.pool.get_max_size()

    def statements_sent(self) -> dict[str, int]:
        """Statements sent since the last call, by role: this server's and its standbys'."""
        sent = {self.role: self.sent}
        self.sent = 0
        for replica in self.replicas.members if self.replicas is not None else ():
            sent[replica.db.role] = sent.get(replica.db.role, 0) + replica.db.sent
            replica.db.sent = 0
        return sent

    async def fetchval(self, query: str, *args: object, read: bool = False) -> Any:
        """The first value of one statement's first row (None if no row); see `after_failure`."""
        try:
            async with Lease(self) as conn:
                return await conn.fetchval(query, *args)
        except Exception as error:
            return await self.after_failure(lambda conn: conn.fetchval(query, *args), error, read=read)

    async def fetchrow(self, query: str, *args: object, read: bool = False) -> "asyncpg.Record | None":
        """One statement's first row (None if none); see `after_failure`."""
        try:
            async with Lease(self) as conn:
                return await conn.fetchrow(query, *args)
        except Exception as error:
            return await self.after_failure(lambda conn: conn.fetchrow(query, *args), error, read=read)

    async def upkeep(self, query: str) -> "asyncpg.Record | None":
        """The first row of a statement the service runs for itself (where a standby stands), on a pooled
        connection: not counted with the requests' statements, not run again if it fails."""
        async with Lease(self) as conn:
            self.sent -= 1  # with no await since Lease counted it: publish() cannot have taken the count between
            return await conn.fetchrow(query)

    async def run(self, statement: Callable[[Connection], Awaitable[T]], *, read: bool) -> T:
        """`statement` on a pooled connection; see `after_failure`."""
        try:
            async with Lease(self) as conn:
                return await statement(conn)
        except Exception as error:
            return await self.after_failure(statement, error, read=read)

    async def after_failure(
        self, statement: Callable[[Connection], Awaitable[T]], error: Exception, *, read: bool
    ) -> T:
        """`statement` once more on another connection if `error` says the first cannot have run it;
        else `error` as this module's own (`Unavailable`, `Refused`), or as it is when it is neither.

        PostgreSQL ends idle connections (a restart, `pg_terminate_backend`, an idle timeout, a
        failover); the pool learns it only when a statement is tried. A statement asyncpg refused to
        send is run again on another connection; so is a read whose connection was lost with the
        statement perhaps sent (`read=True`: running it twice changes nothing). A write that may have
        reached the server is not: the caller gets `Unavailable`, a 503. The first try is written out
        in fetchval and fetchrow, with no closure and no loop: that is every request's path.
        """
        retries = 0
        # Each failed try used up one ended connection (asyncpg closes it), so one more try than the
        # pool has connections reaches a fresh one even when the server ended them all.
        while retries < self.pool.get_max_size() and _may_run_again(error, read):
            retries += 1
            log.info("connection ended by the server; statement run again on another: %s", error)
            try:
                async with Lease(self) as conn:
                    return await statement(conn)
            except Exception as failed:
                error = failed
        own = _as_our_own(error)
        if own is error:
            raise error
        raise own from error


class Lease:
    """One connection of the pool, held for an `async with` block and given back when it ends.

    A class rather than a generator-based context manager, held by Database's methods rather than
    lent by a `yield` dependency: FastAPI runs an exit stack for the latter on every request
    (docs/levers.md, "plain dependency").
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
                raise Unavailable("pool_timeout", f"no connection freed up within {db.acquire_timeout:g}s") from None
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
        db.sent += 1
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.db.pool.release(self.conn)
        finally:
            self.db.queue.release()


def _may_run_again(error: Exception, read: bool) -> bool:
    """The connection was ended by the server, and the statement cannot have run (or is a read)."""
    lost = isinstance(error, asyncpg.ConnectionDoesNotExistError)  # perhaps after it was sent
    return _not_sent(error) or (read and lost)


# Signs that the database is down, unreachable or too slow, rather than that the statement is wrong.
UNREACHABLE = (
    OSError,  # refused, reset, unreachable; TimeoutError is one: opening a connection took too long
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    # Class 57: a statement cancelled (statement_timeout, pg_cancel_backend), a connection ended by a
    # shutdown or pg_terminate_backend (while it logged in, too), a server starting up or recovering.
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
)
REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
# What a pooler in transaction mode that does not keep prepared statements makes of asyncpg's statement cache:
# a name prepared on one server connection is prepared again, or run, on another (42P05, 26000), where
# another client may have prepared it as another statement (docs/operating.md, "Behind PgBouncer").
POOLER_LOST_THEM = (asyncpg.DuplicatePreparedStatementError, asyncpg.InvalidSQLStatementNameError)
# A statement that ended so stored nothing: a value refused, or its transaction rolled back (class 40: a
# deadlock, a serialization failure). What a coalesced statement's members may each run again alone.
STORED_NOTHING = (Refused, asyncpg.TransactionRollbackError)


def _as_our_own(error: Exception) -> Exception:
    """`error` as this module's `Unavailable` or `Refused`; `error` itself when it is neither (a bug: a 500)."""
    cause = f"{type(error).__name__}: {error}"
    if isinstance(error, asyncpg.UniqueViolationError):
        return Conflict(cause, error.constraint_name)
    if isinstance(error, REFUSED):
        return Refused(cause, getattr(error, "constraint_name", None))
    if isinstance(error, POOLER_LOST_THEM) or (
        isinstance(error, asyncpg.ProtocolViolationError) and str(error).startswith("bind message")
    ):  # 08P01 too: "bind message supplies 2 parameters, but prepared statement ... requires 1", "bind message
        # has 1 result formats but query has 2 columns": the statement under that name is not the one sent
        return Unavailable("prepared_statements_lost", cause)
    if not isinstance(error, UNREACHABLE):
        return error
    if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
        # Not the database: this process could not open a socket to it.
        return Unavailable("no_file_descriptor", error.strerror or cause)
    if isinstance(error, TimeoutError | asyncpg.QueryCanceledError):
        return Unavailable("statement_timeout", cause)
    return Unavailable("database_unreachable", cause)


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


async def open_pool(
    settings: Settings, url: str | None = None, *, min_size: int | None = None
) -> "asyncpg.Pool[asyncpg.Record]":
    """A pool on `url` (DATABASE_URL's server by default) sized and timed by the settings; fails if PostgreSQL
    cannot be reached, unless `min_size` is 0: then it connects when a statement first needs it."""
    return await asyncpg.create_pool(
        url or settings.database_url,
        min_size=settings.pool_min_size if min_size is None else min_size,
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


def lifespan(settings: Settings, traced: bool = False) -> Callable[[FastAPI], AbstractAsyncContextManager[State]]:
    """The app's lifespan: the pool exists exactly while the app serves. `traced`: traces are exported."""

    @asynccontextmanager
    async def pool_lifespan(app: FastAPI) -> AsyncIterator[State]:
        pool = await open_pool(settings)
        try:
            queue = asyncio.Semaphore(settings.pool_max_size)
            database = Database(pool, settings.pool_acquire_timeout, settings.ready_timeout, queue, settings.metrics)
            if settings.metrics:  # the series from the start, at 0 (the standbys' in api/replicas.py)
                metrics.STATEMENTS.labels(database.role)
            coalesce(database, settings, traced)
            yield {"database": database}
        finally:
            await close_pool(pool, settings.pool_close_timeout)

    return pool_lifespan


def coalesce(database: Database, settings: Settings, traced: bool, *, writes: bool = True) -> None:
    """Give `database` its coalesced statements, as COALESCE_READS and COALESCE_CREATES ask (api/coalesced.py);
    `writes=False`: reads only (a standby)."""

    def shared(alone: str, many: str, name: str, *, read: bool, by_place: bool = False) -> Coalesced:
        return Coalesced(
            partial(database.fetchrow, read=read), alone, partial(database.run, read=read), many, name=name,
            by_place=by_place, once=not read, metered=settings.metrics, traced=traced, stored_nothing=STORED_NOTHING,
        )  # fmt: skip

    if settings.coalesce_reads:
        database.users_by_id = shared(SQL.get_user, SQL.get_users, "get_user", read=True)
        database.users_by_email = shared(
            SQL.find_users_by_email, SQL.find_users_by_emails, "find_users_by_email", read=True, by_place=True
        )
    # A write: a user created answers one request, and a lost one is not run again.
    if settings.coalesce_creates and writes:
        database.creates = shared(SQL.create_user, SQL.create_users, "create_user", read=False)


async def database(request: Request) -> Database:
    """The app's database: its pool and the queue in front of it, as the lifespan made them."""
    # The lifespan's state, which the server puts in every request's scope (ASGI's lifespan state);
    # `request.state.database` reads the same through a State made per request
    # (docs/levers.md, "a get-one's path trimmed").
    db: Database = request.scope["state"]["database"]
    return db


# A plain dependency: a route runs its statement with `await db.fetchval(...)` (or fetchrow), which
# holds a connection for that statement only, so it is back in the pool before the response is written.
Db = Annotated[Database, Depends(database)]
