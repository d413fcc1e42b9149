"""Prometheus metrics: what GET /metrics shows, every worker's figures summed in one scrape.

Names and labels follow OpenTelemetry's semantic conventions as Prometheus spells them, so the series
are the same whether scraped here or exported over OTLP and converted by a collector. `users-api serve`
points PROMETHEUS_MULTIPROC_DIR at a fresh folder before any worker starts: each worker then writes
its figures to files of its own there, and a scrape adds them up (prometheus_client's multiprocess
mode, chosen when prometheus_client is first imported).
"""

import asyncio
import os
from bisect import bisect_left
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, Protocol, get_args

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ
CONTENT_TYPE = CONTENT_TYPE_LATEST
PUBLISH_SECONDS = 1.0

# Not prometheus_client's global registry: tests build many apps in one process, and a registry of
# our own keeps the exposition to the metrics below.
REGISTRY = CollectorRegistry()

REQUEST_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)  # FastAPI's own
WAIT_BOUNDS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

REQUEST_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Time from a request's arrival to its response's last byte; _count is the number of requests.",
    ["http_request_method", "http_route", "http_response_status_code"],
    buckets=REQUEST_BOUNDS,
    registry=REGISTRY,
)
ACTIVE_REQUESTS = Gauge(
    "http_server_active_requests",
    "Requests being answered now.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
CONNECTIONS = Gauge(
    "db_client_connection_count",
    "Open connections of the pool, idle or used by a request (sampled every second).",
    ["db_client_connection_state"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
MAX_CONNECTIONS = Gauge(
    "db_client_connection_max",
    "Most connections the pools may open (POOL_MAX_SIZE per worker).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
PENDING_REQUESTS = Gauge(
    "db_client_connection_pending_requests",
    "Requests waiting for a free connection (sampled every second).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
WAIT_TIME = Histogram(
    "db_client_connection_wait_time_seconds",
    "Time a request waited for a pooled connection; over POOL_ACQUIRE_TIMEOUT it got a 503 instead.",
    buckets=WAIT_BOUNDS,
    registry=REGISTRY,
)
UnavailableReason = Literal[
    "pool_timeout",
    "database_unreachable",
    "statement_timeout",
    "no_file_descriptor",
    "no_signing_keys",
    "prepared_statements_lost",
]
UNAVAILABLE_REASONS: tuple[UnavailableReason, ...] = get_args(UnavailableReason)
UNAVAILABLE = Counter(
    "users_api_unavailable_responses",
    "503 responses, by reason: " + ", ".join(UNAVAILABLE_REASONS) + ".",
    ["reason"],
    registry=REGISTRY,
)
for _reason in UNAVAILABLE_REASONS:  # at 0 from the start: an alert on their rate needs the series to exist
    UNAVAILABLE.labels(_reason)
BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
BATCH_SIZE = Histogram(
    "users_api_coalesced_batch_size",
    "Requests answered by one statement (COALESCE_READS, COALESCE_CREATES), by kind: get_user, "
    "find_users_by_email, create_user; _count is the statements answered, _sum the requests they answered.",
    ["read"],
    buckets=BATCH_BOUNDS,
    registry=REGISTRY,
)
STATEMENTS_SAVED = Counter(
    "users_api_coalesced_statements_saved",
    "Statements not sent because a request shared another's: a batch's size less one.",
    ["read"],
    registry=REGISTRY,
)
STATEMENTS = Counter(
    "users_api_db_statements",
    "Statements sent for requests, by the server's role: primary (DATABASE_URL), replica (DATABASE_REPLICA_URLS); "
    "a coalesced statement counts once, the service's polls of the standbys not at all.",
    ["db_role"],
    registry=REGISTRY,
)
ReadOnPrimaryReason = Literal["not_caught_up", "none_usable", "replica_failed"]
READS_ON_PRIMARY = Counter(
    "users_api_reads_on_primary",
    "Reads sent to the primary although standbys are configured, by reason: not_caught_up (none had replayed "
    "the Consistency-Token within REPLICA_WAIT), none_usable (all unreachable, promoted or past REPLICA_MAX_LAG), "
    "replica_failed (run again after a standby failed it).",
    ["reason"],
    registry=REGISTRY,
)
REPLICA_LAG_BYTES = Gauge(
    "users_api_replica_lag_bytes",
    "WAL the standby has still to replay, as last polled (the largest any worker saw).",
    ["replica"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
REPLICA_LAG_SECONDS = Gauge(
    "users_api_replica_lag_seconds",
    "How long ago the primary was last at a position the standby has replayed; 0 when caught up, +Inf while not known.",
    ["replica"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
REPLICA_USABLE = Gauge(
    "users_api_replica_usable",
    "1 while the standby answers reads: reachable, in recovery, at most REPLICA_MAX_LAG behind (0 if any "
    "worker finds it not).",
    ["replica"],
    multiprocess_mode="livemin",
    registry=REGISTRY,
)
KEY_FETCHES = Counter(
    "users_api_auth_key_fetches",
    "Fetches of the issuer's signing keys (AUTH_ISSUER), by outcome: fetched, failed (the last keys kept).",
    ["outcome"],
    registry=REGISTRY,
)


class Tally:
    """This worker's requests and connection waits since they were last published, in plain numbers.

    prometheus_client's `observe()` takes a lock and, in multiprocess mode, writes a file for the sum
    and again for the bucket, on every request (docs/levers.md, "metrics tallied"). A request here
    appends a tuple; `publish()` sorts them into buckets and adds
    the counts to the metrics once a second, and before every scrape, in one loop rather than with
    the caches cold on each request's way.
    """

    __slots__ = ("active", "batched", "batches", "ended", "requests", "waited", "waits")

    def __init__(self) -> None:
        self.active = 0
        self.ended: list[tuple[str, str, int, float]] = []  # (method, route, status, seconds), not yet counted
        self.waited: list[float] = []
        # Per (method, route, status): a count per bucket (+Inf last), then the sum of the seconds.
        self.requests: dict[tuple[str, str, int], list[float]] = {}
        self.waits = _row(WAIT_BOUNDS)
        self.batched: list[tuple[str, int]] = []  # (query file, reads answered), not yet counted
        self.batches: dict[str, list[float]] = {}  # per query file, as `requests`

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.ended.append((method, route, status, seconds))

    def wait(self, seconds: float) -> None:
        self.waited.append(seconds)

    def batch(self, query: str, size: int) -> None:
        self.batched.append((query, size))

    def count(self) -> None:
        """Sort the requests and waits since the last call into their rows' buckets."""
        ended, self.ended = self.ended, []
        for method, route, status, seconds in ended:
            row = self.requests.get((method, route, status))
            if row is None:
                row = self.requests[method, route, status] = _row(REQUEST_BOUNDS)
            row[bisect_left(REQUEST_BOUNDS, seconds)] += 1  # the first bucket whose bound is >= seconds
            row[-1] += seconds
        waited, self.waited = self.waited, []
        row = self.waits
        for seconds in waited:
            row[bisect_left(WAIT_BOUNDS, seconds)] += 1
            row[-1] += seconds
        batched, self.batched = self.batched, []
        for query, size in batched:
            row = self.batches.get(query) or self.batches.setdefault(query, _row(BATCH_BOUNDS))
            row[bisect_left(BATCH_BOUNDS, size)] += 1
            row[-1] += size


def _row(bounds: tuple[float, ...]) -> list[float]:
    return [0.0] * (len(bounds) + 2)  # the buckets, +Inf, the sum


TALLY = Tally()
_children: dict[tuple[str, str, int], Histogram] = {}


class Pool(Protocol):
    """What the pool's gauges sample (api.db.Database is one): named here, so that this module imports none."""

    waiting: int  # requests in the queue for a connection now

    def sizes(self) -> tuple[int, int, int]:
        """Connections open, idle, and the most the pool may open."""
        ...

    def statements_sent(self) -> dict[str, int]:
        """Statements sent since the last call, by the server's role (primary, replica)."""
        ...


def publish(pool: Pool | None = None) -> None:
    """Add what the tally counted to the metrics, and sample the in-flight requests and the pool."""
    TALLY.count()
    for key, row in TALLY.requests.items():
        if any(row):
            child = _children.get(key)
            if child is None:
                method, route, status = key
                child = _children[key] = REQUEST_DURATION.labels(method, route, str(status))
            _add(child, row)
    _add(WAIT_TIME, TALLY.waits)
    for query, row in TALLY.batches.items():
        if row[-1]:
            STATEMENTS_SAVED.labels(query).inc(row[-1] - sum(row[:-1]))  # the reads less the statements
            _add(BATCH_SIZE.labels(query), row)
    ACTIVE_REQUESTS.set(TALLY.active)
    if pool is not None:
        size, idle, most = pool.sizes()
        CONNECTIONS.labels("idle").set(idle)
        CONNECTIONS.labels("used").set(size - idle)
        MAX_CONNECTIONS.set(most)
        PENDING_REQUESTS.set(pool.waiting)
        for role, count in pool.statements_sent().items():
            if count:
                STATEMENTS.labels(role).inc(count)


def _add(histogram: Histogram, row: list[float]) -> None:
    """Add a row of the tally to a histogram, and empty the row.

    prometheus_client has no call to add many observations at once; its buckets and sum are written
    here as `observe()` writes them, one increment per bucket rather than per observation
    (tests/test_metrics.py fails if a new prometheus_client keeps them otherwise).
    """
    buckets = histogram._buckets
    for index, count in enumerate(row[:-1]):
        if count:
            buckets[index].inc(count)
            row[index] = 0.0
    if row[-1]:
        histogram._sum.inc(row[-1])
        row[-1] = 0.0


def exposition() -> bytes:
    """The metrics in Prometheus's text format: every worker's, when there are several."""
    if not MULTIPROCESS:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()  # a fresh one per scrape, as multiprocess mode asks
    prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


@asynccontextmanager
async def published(pool: Pool) -> AsyncIterator[None]:
    """While the block runs, the tally and the pool are published every second; once more as it ends.

    The gauges are sampled rather than updated on every acquire and release: that would cost two file
    writes per request, and a scrape every 15 s reads one point of them anyway.
    """

    async def publish_forever() -> None:
        while True:
            publish(pool)
            await asyncio.sleep(PUBLISH_SECONDS)

    publisher = asyncio.create_task(publish_forever())
    try:
        yield
    finally:
        publisher.cancel()
        publish()
        if MULTIPROCESS:  # the live gauges of a stopped worker no longer count
            prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
