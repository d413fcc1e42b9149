"""Prometheus metrics: what GET /metrics shows, every worker's figures summed in one scrape.

Names and labels follow OpenTelemetry's semantic conventions as Prometheus spells them, so the series
are the same whether scraped here or exported over OTLP and converted by a collector. `users-api serve`
points PROMETHEUS_MULTIPROC_DIR at a fresh folder before any worker starts: each worker then writes
its figures to files of its own there, and a scrape adds them up (prometheus_client's multiprocess
mode, chosen when prometheus_client is first imported).
"""

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

if TYPE_CHECKING:
    from api.db import Database

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ
CONTENT_TYPE = CONTENT_TYPE_LATEST
POOL_SAMPLE_SECONDS = 1.0

# Not prometheus_client's global registry: tests build many apps in one process, and a registry of
# our own keeps the exposition to the metrics below.
REGISTRY = CollectorRegistry()

REQUEST_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Time from a request's arrival to its response's last byte; _count is the number of requests.",
    ["http_request_method", "http_route", "http_response_status_code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10),  # FastAPI's own
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
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
UNAVAILABLE_REASONS = ("pool_timeout", "database_unreachable", "statement_timeout", "no_file_descriptor")
UNAVAILABLE = Counter(
    "users_api_unavailable_responses",
    "503 responses, by reason: " + ", ".join(UNAVAILABLE_REASONS) + ".",
    ["reason"],
    registry=REGISTRY,
)
for _reason in UNAVAILABLE_REASONS:  # at 0 from the start: an alert on their rate needs the series to exist
    UNAVAILABLE.labels(_reason)

_durations: dict[tuple[str, str, int], Histogram] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request; the children are cached: `labels()` costs a lock and a tuple each call."""
    key = (method, route, status)
    child = _durations.get(key)
    if child is None:
        child = _durations[key] = REQUEST_DURATION.labels(method, route, str(status))
    child.observe(seconds)


def exposition() -> bytes:
    """The metrics in Prometheus's text format: every worker's, when there are several."""
    if not MULTIPROCESS:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()  # a fresh one per scrape, as multiprocess mode asks
    prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def sample_pool(db: "Database") -> None:
    """This worker's pool, as the gauges show it."""
    size, idle = db.pool.get_size(), db.pool.get_idle_size()
    CONNECTIONS.labels("idle").set(idle)
    CONNECTIONS.labels("used").set(size - idle)
    MAX_CONNECTIONS.set(db.pool.get_max_size())
    PENDING_REQUESTS.set(db.waiting)


@asynccontextmanager
async def pool_sampled(db: "Database") -> AsyncIterator[None]:
    """While the block runs, the pool's gauges are refreshed every second; a worker's are removed as it stops.

    Sampled rather than updated on every acquire and release: the gauges would cost two file writes per
    request, and a scrape every 15 s reads one point of them anyway.
    """

    async def sample_forever() -> None:
        while True:
            sample_pool(db)
            await asyncio.sleep(POOL_SAMPLE_SECONDS)

    sampler = asyncio.create_task(sample_forever())
    try:
        yield
    finally:
        sampler.cancel()
        if MULTIPROCESS:  # the live gauges of a stopped worker no longer count
            prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
