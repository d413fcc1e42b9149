"""Reads on hot standbys (DATABASE_REPLICA_URLS), and the Consistency-Token that keeps a client's writes in its reads.

A read goes to a standby that answers, is still in recovery and is at most REPLICA_MAX_LAG behind the
primary, each in turn. A read that carries a token goes only to a standby that has replayed the WAL up to
the token's position, polled again for up to REPLICA_WAIT if none had when last polled; else to the primary.
A read a standby fails is run again on another standby or on the primary: a read changes nothing, so it is
safe to run twice. Writes, idempotent creates and /ready stay on the primary (the `Database` routes get).

Where each standby stands is polled every POLL_SECONDS in each worker, with the primary's position, so
that its lag is measured against the primary's own clock: how long ago the primary was last at a position
the standby has replayed. A standby's `now() - pg_last_xact_replay_timestamp()` would grow while
nothing is written, and compare two machines' clocks.
"""

import asyncio
import logging
import random
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import TypeVar, TypeVarTuple, get_args
from urllib.parse import urlsplit

import asyncpg

from api import metrics
from api.db import Database, Unavailable, close_pool, coalesce, open_pool
from api.metrics import ReadOnPrimaryReason
from api.queries import SQL
from api.settings import Settings

log = logging.getLogger(__name__)
Ts = TypeVarTuple("Ts")
T = TypeVar("T")

POLL_SECONDS = 0.1
# How long a standby's turn at the coalesced reads lasts. Read by read, get-ones waiting at once would split
# between the standbys' statements, twice as many with two: with 3 hosts and 2 standbys, 250 µs of API CPU per
# get-one against 200 with one standby (make bench-scale). A turn keeps a batch whole, and over a second each
# standby takes its share. Reads run alone (a page of the list) go read by read: in turns, one standby would
# work while the other waited.
TURN_SECONDS = 0.01
CATCH_UP_POLL_SECONDS = 0.002  # between polls of the standbys while a read waits for them to replay its token
# A read a standby refused but another server may answer, run again elsewhere with the standby kept: a statement
# cancelled for a conflict with recovery (class 40, when max_standby_streaming_delay is short), and what a standby
# that has not replayed the primary's latest migrations answers a read naming what they made (class 42).
RUN_ELSEWHERE = (
    asyncpg.TransactionRollbackError,
    asyncpg.UndefinedTableError,
    asyncpg.UndefinedColumnError,
    asyncpg.UndefinedFunctionError,
    asyncpg.UndefinedObjectError,
)
# The 503 reasons that say the standby itself is down or stuck, and is skipped until a poll finds it answering.
# Not pool_timeout: this worker's own pool was full, which the next read may not find.
STANDBY_DOWN = ("database_unreachable", "statement_timeout")
NOT_POLLED = "not polled yet"
POSITIONS_KEPT = 600  # the primary's last minute of positions, at POLL_SECONDS: a lag beyond shows as a minute
# Format 1: "1", then the primary's WAL position after the write's commit in 16 hex digits. Letters and
# digits only, so that it goes unchanged in any header, cookie or URL. Versioned by its first character, so
# that a later token may carry more (a timeline, a system identifier) while clients treat it as opaque.
_TOKEN = re.compile(r"1([0-9a-f]{16})")
PRIMARY_ONLY = 2**64 - 1  # what a token says when the write's position could not be read: only the primary


def token_of(lsn: int) -> str:
    """The Consistency-Token for a WAL position."""
    return f"1{lsn:016x}"


def lsn_of(token: str) -> int | None:
    """The WAL position a Consistency-Token carries; None when it is not one this service wrote."""
    found = _TOKEN.fullmatch(token)
    return int(found.group(1), 16) if found else None


def lag_seconds(positions: "deque[tuple[float, int]]", replayed: int, now: float) -> float | None:
    """How far behind the primary a standby that has replayed up to `replayed` is: `now` less when the primary was
    last seen (oldest first in `positions`) at a position the standby has replayed; 0 when it has replayed the
    newest. None, unknown, when it has replayed none of them: not measured yet (a worker's first poll), or
    further behind than every position kept."""
    if not positions or positions[-1][1] <= replayed:
        return 0.0 if positions else None
    for seen, position in reversed(positions):
        if position <= replayed:
            return max(0.0, now - seen)
    return None


def replica_name(url: str, number: int) -> str:
    """host:port of a standby's URL, what logs and metrics call it: never its user or password. A URL that names
    its host only in its query (`?host=...`), or none, is called by its place in DATABASE_REPLICA_URLS."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    return f"{host}:{port or 5432}" if host else f"replica-{number}"


class Replica:
    """One standby: its own pool, queue and coalesced reads, and where it stood when last polled."""

    __slots__ = ("db", "in_recovery", "lag_bytes", "lag_seconds", "name", "polling", "reachable", "replayed", "why")

    def __init__(self, name: str, db: Database) -> None:
        self.name = name
        self.db = db
        self.reachable = False
        self.in_recovery = False
        self.replayed = 0  # the WAL position it had replayed when last polled
        self.lag_bytes = 0
        self.lag_seconds = 0.0
        self.why: str | None = NOT_POLLED  # why it takes no reads; None while it does
        self.polling: asyncio.Future[None] | None = None

    @property
    def usable(self) -> bool:
        return self.why is None

    async def poll(self) -> None:
        """Ask the standby where it stands. Callers at once share one statement: a burst of reads waiting for
        their tokens sends one poll, not one each."""
        if self.polling is None:
            self.polling = asyncio.ensure_future(self._status())
            self.polling.add_done_callback(self._polled)
        await asyncio.shield(self.polling)

    def _polled(self, done: "asyncio.Future[None]") -> None:
        self.polling = None

    async def _status(self) -> None:
        try:
            async with asyncio.timeout(self.db.ready_timeout):
                row = await self.db.upkeep(SQL.replica_status)
        except Exception as error:  # refused, reset, timed out, the pool's wait: no answer is no answer
            self.reachable = False
            self.in_recovery = False
            if self.why is None:  # the first failure is logged where it is judged; its cause here
                log.info("standby %s did not answer its poll: %s", self.name, error)
            return
        self.reachable = True
        self.in_recovery = bool(row is not None and row["in_recovery"])
        if row is not None and row["replayed"] is not None:
            self.replayed = int(row["replayed"])


class Replicas:
    """The primary's standbys, which of them may answer a read now, and the lag of each."""

    def __init__(
        self, primary: Database, members: list[Replica], *, wait: float, max_lag: float, metered: bool
    ) -> None:
        self.primary = primary
        self.members = members
        self.wait = wait
        self.max_lag = max_lag
        self.metered = metered
        # (monotonic, the primary's flushed LSN: what a standby can have received), oldest first
        self.positions: deque[tuple[float, int]] = deque(maxlen=POSITIONS_KEPT)
        self.primary_seen = 0.0  # when the primary last told its position
        self.turn = 0  # reads sent read by read so far: whose turn it is
        # Where this worker's turns start: the clock is the machine's, so without it every worker (and every host
        # on one machine) would send its coalesced reads to the same standby at once.
        self.phase = random.uniform(0, len(members))  # noqa: S311 - spreading load, not a secret

    async def read(
        self, statement: Callable[[Database, *Ts], Awaitable[T]], lsn: int, *args: *Ts, coalesced: bool = False
    ) -> T:
        """`statement` on a standby that may answer it (one that has replayed `lsn`, 0 for any), else the primary.
        The standbys take reads in turn, read by read; `coalesced` reads (api/coalesced.py) in turns of
        TURN_SECONDS, so that the reads waiting at once stay one statement on one standby."""
        return await self._read(self._in_turn if coalesced else self._each, statement, lsn, args)

    async def _read(
        self,
        pick: Callable[[int, list[Replica]], Replica | None],
        statement: Callable[[Database, *Ts], Awaitable[T]],
        lsn: int,
        args: tuple[*Ts],
    ) -> T:
        tried: list[Replica] = []
        reason: ReadOnPrimaryReason = "none_usable"
        while True:
            replica = pick(lsn, tried)
            if replica is None and lsn and not tried and self._any_usable():
                reason = "not_caught_up"
                if lsn != PRIMARY_ONLY:
                    replica = await self._caught_up(lsn)
            if replica is None:
                if self.metered:
                    metrics.READS_ON_PRIMARY.labels(reason).inc()
                return await statement(self.primary, *args)
            try:
                return await statement(replica.db, *args)
            except (Unavailable, *RUN_ELSEWHERE) as error:
                if isinstance(error, Unavailable) and error.reason in STANDBY_DOWN:
                    self._judge(replica, f"a read failed on it: {error}")
                tried.append(replica)
                reason = "replica_failed"

    async def token(self) -> str:
        """The Consistency-Token of a write that has committed: the primary's WAL position now.

        When the position cannot be read (the primary went away just after the write), a token that only
        the primary satisfies: the client's next read may wait for the primary, but cannot miss its write.
        """
        try:
            lsn = await self.primary.fetchval(SQL.current_wal_lsn)
        except Unavailable as error:
            log.warning("the primary's WAL position after a write could not be read (%s): its token names the "
                        "primary only", error)  # fmt: skip
            return token_of(PRIMARY_ONLY)
        return token_of(int(lsn))

    def _any_usable(self) -> bool:
        return any(replica.why is None for replica in self.members)

    def _each(self, lsn: int, tried: list[Replica]) -> Replica | None:
        """The next usable standby that has replayed `lsn` (none of those `tried`), read by read: a read the standby
        runs alone (a page of the list) is the standby's work, spread over all of them."""
        found = self._from(self.turn, lsn, tried)
        self.turn += 1
        return found

    def _in_turn(self, lsn: int, tried: list[Replica]) -> Replica | None:
        """The usable standby whose turn it is (or the next that has replayed `lsn`, none of those `tried`)."""
        return self._from(int(time.monotonic() / TURN_SECONDS + self.phase), lsn, tried)

    def _from(self, first: int, lsn: int, tried: list[Replica]) -> Replica | None:
        members = self.members
        count = len(members)
        for step in range(count):
            replica = members[(first + step) % count]
            if replica.why is None and replica.replayed >= lsn and replica not in tried:
                return replica
        return None

    async def _caught_up(self, lsn: int) -> Replica | None:
        """A usable standby that has replayed `lsn`, polled again until REPLICA_WAIT has passed; None if none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while True:
            polled = [replica for replica in self.members if replica.why is None]
            if not polled:
                return None
            with suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await asyncio.gather(*(replica.poll() for replica in polled))
            found = self._each(lsn, [])
            left = deadline - loop.time()
            if found is not None or left <= 0:
                return found
            await asyncio.sleep(min(CATCH_UP_POLL_SECONDS, left))

    async def watch(self) -> None:
        """Poll the primary's position and every standby's, every POLL_SECONDS, until cancelled."""
        while True:
            try:
                await self.poll()
            except Exception:  # a bug here must not leave every standby judged as it last was, silently
                log.exception("polling the standbys failed; trying again")
            await asyncio.sleep(POLL_SECONDS)

    async def poll(self) -> None:
        """The primary's position, then each standby's, and which of them may answer reads now."""
        try:
            async with asyncio.timeout(self.primary.ready_timeout):
                row = await self.primary.upkeep(SQL.current_wal_lsn)
            if row is not None:
                self.positions.append((time.monotonic(), int(row["flushed"])))
                self.primary_seen = time.monotonic()
        except Exception as error:  # unreachable, timed out: lags are measured as of the last position seen
            log.debug("the primary's WAL position could not be read: %s", error)
        await asyncio.gather(*(replica.poll() for replica in self.members))
        for replica in self.members:
            self._judge(replica)

    def _judge(self, replica: Replica, failed: str | None = None) -> None:
        """Whether `replica` may answer reads; logged once when it stops, once when it is back."""
        # As of the primary's last answer: while it is unreachable, nothing newer can have been written through it.
        lag = lag_seconds(self.positions, replica.replayed, self.primary_seen)
        replica.lag_bytes = max(0, self.positions[-1][1] - replica.replayed) if self.positions else 0
        replica.lag_seconds = lag if lag is not None else float("inf")
        if failed is not None:
            replica.reachable = False
            why: str | None = failed
        elif not replica.reachable:
            why = "it does not answer"
        elif not replica.in_recovery:
            why = "it is not in recovery any more (promoted?): it no longer follows the primary"
        elif lag is None:
            why = "how far behind the primary it is is not known yet (or it is behind every position kept)"
        elif lag > self.max_lag:
            why = f"it is {lag:.1f}s behind the primary (REPLICA_MAX_LAG={self.max_lag:g})"
        else:
            why = None
        if why is not None and replica.why in (None, NOT_POLLED):
            log.warning("standby %s skipped for reads: %s", replica.name, why)
        elif why is None and replica.why is not None:
            log.info("standby %s takes reads%s", replica.name, "" if replica.why == NOT_POLLED else " again")
        replica.why = why
        if self.metered:
            metrics.REPLICA_LAG_BYTES.labels(replica.name).set(replica.lag_bytes)
            metrics.REPLICA_LAG_SECONDS.labels(replica.name).set(replica.lag_seconds)  # +Inf while not known
            metrics.REPLICA_USABLE.labels(replica.name).set(0 if why else 1)


@asynccontextmanager
async def reading_from_replicas(primary: Database, settings: Settings, traced: bool) -> AsyncIterator[None]:
    """While the block runs, `primary.replicas` holds DATABASE_REPLICA_URLS' standbys, polled in the background.

    Their pools open with no connection: a standby down at start is skipped until it answers, rather than
    keeping the service from starting.
    """
    members: list[Replica] = []
    try:
        for url in settings.replica_urls:
            pool = await open_pool(settings, url, min_size=0)
            db = Database(pool, settings.pool_acquire_timeout, settings.ready_timeout,
                          asyncio.Semaphore(settings.pool_max_size), settings.metrics, role="replica")  # fmt: skip
            coalesce(db, settings, traced, writes=False)
            members.append(Replica(replica_name(url, len(members) + 1), db))
        if settings.metrics:  # the series from the start, at 0
            metrics.STATEMENTS.labels("replica")
            for reason in get_args(ReadOnPrimaryReason):
                metrics.READS_ON_PRIMARY.labels(reason)
        replicas = Replicas(primary, members, wait=settings.replica_wait, max_lag=settings.replica_max_lag,
                            metered=settings.metrics)  # fmt: skip
        await replicas.poll()  # reads go to the standbys from the first request on
        watcher = asyncio.create_task(replicas.watch())
        primary.replicas = replicas
        try:
            yield
        finally:
            primary.replicas = None
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
    finally:
        await asyncio.gather(*(close_pool(replica.db.pool, settings.pool_close_timeout) for replica in members))
