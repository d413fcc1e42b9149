"""Reads that concurrent requests share: the get-ones (or lookups) waiting at once, in one statement.

A read with no other of its kind in flight runs its own query file at once, in its own task, as if
nothing were coalesced: a lone client's request is never delayed. A read that finds others in flight
joins the open batch of its kind, or opens one and starts the task that sends it; that task runs when
the event loop comes to it, after the tasks ready in this turn, with no timer. The batch takes members
until its task holds a connection (it waits in the pool's fair queue as a request would, and under
load gathers the requests that arrive meanwhile), then runs one statement for all of them and hands
each member its own row. Everything else stays the request's own: its 404, ETag or 304, log line,
metrics and span.
"""

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from opentelemetry import trace

from api import metrics

if TYPE_CHECKING:
    Connection = PoolConnectionProxy[asyncpg.Record]
else:  # the stubs make it generic; the class is not subscriptable at run time
    Connection = PoolConnectionProxy

Rows = list[asyncpg.Record]
# Runs a statement on a pooled connection, once more on another if the first was ended (a read): db.run.
Runner = Callable[[Callable[[Connection], Awaitable[Rows]]], Awaitable[Rows]]
# Runs one read's query file and returns its first row, as db.fetchrow does with read=True.
Fetcher = Callable[..., Awaitable[asyncpg.Record | None]]
BATCH_MAX = 1000  # members of one statement (an array of 1,000 ids); the next read opens another batch
_tracer = trace.get_tracer(__name__)


class Batch:
    """The reads of one statement: a column per parameter of the single read, and who waits for each row."""

    __slots__ = ("columns", "spans", "waiters")

    def __init__(self, width: int) -> None:
        self.columns: list[list[object]] = [[] for _ in range(width)]
        self.waiters: list[asyncio.Future[asyncpg.Record | None]] = []
        self.spans: list[trace.Span] = []  # the members' server spans, when traces are exported

    def drop_the_gone(self) -> None:
        """Leave out the members whose requests were cancelled (their clients went away) before it is sent:
        a create no one waits for is not made, and cannot take an email from a member still waiting."""
        if all(not waiter.done() for waiter in self.waiters):
            return
        places = [place for place, waiter in enumerate(self.waiters) if not waiter.done()]
        self.columns = [[column[place] for place in places] for column in self.columns]
        self.waiters = [self.waiters[place] for place in places]
        self.spans = [self.spans[place] for place in places] if self.spans else []


class Coalesced:
    """One kind of read: `alone` is its query file for one read, `query` the same for many, taking for each
    parameter of `alone` an array of them.

    The first column of `query` says which read a row answers: the read's first parameter (`by_place=False`:
    an id), or its place in the arrays, from 1 (`by_place=True`: what a lookup by email is matched by,
    since only PostgreSQL can lower an email as its collation does). A read gets `alone`'s row, or the row
    of `query` that answers it (None for none).
    """

    __slots__ = (
        "alone", "by_place", "fetchrow", "in_flight", "metered", "name", "once", "open", "query", "run", "sending",
        "stored_nothing", "traced",
    )  # fmt: skip

    def __init__(
        self, fetchrow: Fetcher, alone: str, run: Runner, query: str, *, name: str, by_place: bool, metered: bool,
        traced: bool, stored_nothing: tuple[type[Exception], ...], once: bool = False,
    ) -> None:  # fmt: skip
        self.fetchrow, self.alone = fetchrow, alone
        self.run, self.query = run, query
        self.name = name  # the one read's query file: what the metrics and the batch's span are named by
        self.by_place = by_place
        # A row answers only the first member that asked for its key (a user created for an email: the
        # second request for it finds it taken), rather than every member that did (a user read by id).
        self.once = once
        # Errors after which the statement is known to have stored nothing (a value PostgreSQL refused, a
        # deadlock): each member then runs alone, so that only the one at fault gets its error.
        self.stored_nothing = stored_nothing
        self.metered = metered  # METRICS: each statement's reads go to users_api_coalesced_batch_size
        self.traced = traced  # traces exported: a span per batch, linked to and from its members' spans
        self.in_flight = 0  # statements of this kind sent and not yet answered, or waiting for a connection
        self.open: Batch | None = None
        self.sending: set[asyncio.Task[None]] = set()  # the event loop keeps only a weak reference to a task
        if metered:  # the series from the start, at 0
            metrics.STATEMENTS_SAVED.labels(name)
            metrics.BATCH_SIZE.labels(name)

    def read(self, *args: object) -> Awaitable[asyncpg.Record | None]:
        """The row that answers the read of `args`, or None when there is none: to be awaited at once, as a
        route does (a read alone counts as in flight from then, a member of a batch from this call). Not a
        coroutine: a member awaits its waiter with no frame of this module between
        (docs/levers.md, "a get-one's path trimmed")."""
        batch = self.open
        if batch is None and not self.in_flight:  # alone: at once, as if nothing were coalesced
            return self._alone(args)
        loop = asyncio.get_running_loop()
        if batch is None:
            batch = self.open = Batch(len(args))
            self.in_flight += 1
            # A context of its own: the batch is no one request's, and its spans are in no request's trace.
            task = loop.create_task(self._send(batch), context=contextvars.Context())
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)
        for column, value in zip(batch.columns, args, strict=True):
            column.append(value)
        waiter: asyncio.Future[asyncpg.Record | None] = loop.create_future()
        batch.waiters.append(waiter)
        if self.traced:
            batch.spans.append(trace.get_current_span())
        if len(batch.waiters) >= BATCH_MAX:
            self.open = None
        # A member whose request is cancelled (its client went away) cancels its waiter alone, and is left
        # out of the statement if that has not been sent yet.
        return waiter

    async def _alone(self, args: tuple[object, ...]) -> asyncpg.Record | None:
        self.in_flight += 1  # run as the caller awaits, with no turn of the event loop since `read`
        try:
            row = await self.fetchrow(self.alone, *args)
        finally:
            self.in_flight -= 1
        if self.metered:
            metrics.TALLY.batch(self.name, 1)
        return row

    async def _send(self, batch: Batch) -> None:
        try:
            await self._answer(batch)
        finally:
            self.in_flight -= 1
            self._close(batch)
            for waiter in batch.waiters:  # none is left waiting, whatever ended the task (the app stopping, too)
                waiter.cancel()

    async def _answer(self, batch: Batch) -> None:
        try:
            rows = await self.run(lambda conn: self._statement(conn, batch))
        except self.stored_nothing:
            await self._each_alone(batch)
            return
        except Exception as error:  # each member's: Unavailable is each one's 503
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            return
        found = {row[0]: row for row in rows}
        keys = range(1, len(batch.waiters) + 1) if self.by_place else batch.columns[0]
        answer = found.pop if self.once else found.get
        for waiter, key in zip(batch.waiters, keys, strict=True):
            row = answer(key, None)  # a member gone away still had its row: not the next one's
            if not waiter.done():
                waiter.set_result(row)
        if self.metered and batch.waiters:  # none: every member went away, and no statement was sent
            metrics.TALLY.batch(self.name, len(batch.waiters))

    async def _each_alone(self, batch: Batch) -> None:
        for place, waiter in enumerate(batch.waiters):
            if waiter.done():  # gone away: its statement is not run
                continue
            try:
                row = await self.fetchrow(self.alone, *(column[place] for column in batch.columns))
            except Exception as refused:
                if not waiter.done():
                    waiter.set_exception(refused)
            else:
                if not waiter.done():
                    waiter.set_result(row)
            if self.metered:
                metrics.TALLY.batch(self.name, 1)

    async def _statement(self, conn: Connection, batch: Batch) -> Rows:
        self._close(batch)  # a connection is held: what arrives from now on goes in the next statement
        batch.drop_the_gone()
        if not batch.waiters:
            return []
        if not self.traced:
            return await conn.fetch(self.query, *batch.columns)
        links = [trace.Link(span.get_span_context()) for span in batch.spans]
        with _tracer.start_as_current_span(f"coalesced {self.name}", links=links) as span:  # its statement: query's
            span.set_attribute("users_api.batch.size", len(batch.waiters))
            for member in batch.spans:
                member.add_link(span.get_span_context())
            return await conn.fetch(self.query, *batch.columns)

    def _close(self, batch: Batch) -> None:
        if self.open is batch:
            self.open = None
