"""`make bench-observability`: what seeing inside costs a get-one, in CPU, request by request.

Two builds of users-api's app in one process, on one database: as configured by default (a log
line per request, metrics), and unobserved (METRICS=false, LOG_LEVEL=warning: the trace id stays, it
is the contract). Their requests alternate one by one, so that the drift of two shared cores, which
moves `make bench`'s rounds far more than this costs (docs/benchmarks.md), falls on the two alike;
time.process_time() around each request counts this process's CPU only (PostgreSQL's is not). The
log lines go to /dev/null through the service's own handler, flushed as it flushes them. Each run
is a fresh process; RUNS of them. Writes bench/results/observability-<timestamp>.md.
"""

import logging
import logging.config
import statistics
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime

from api.app import create_app
from api.ops.logging_config import logging_config
from api.settings import Settings
from bench import levers, paired

RUNS = 6  # each of the 2 orders of the builds three times: the build called first is not always the same
REQUESTS = 4000  # per build and run, after WARMUP each
WARMUP = 300
BUILDS = ("observed", "unobserved")
REQUEST_LINES = "api.requests"  # the logger of a request's line, as the operators' guide names it


async def child(url: str, order: list[str]) -> dict[str, float]:
    """Mean CPU µs per get-one of each build, their requests interleaved in `order`."""
    logging.config.dictConfig(logging_config("info", "text"))
    lines = logging.getLogger(REQUEST_LINES)
    apps = {
        build: create_app(Settings(_env_file=None, database_url=url, metrics=build == "observed", pool_max_size=2))
        for build in order
    }
    cpu: dict[str, list[float]] = {build: [] for build in BUILDS}
    async with AsyncExitStack() as stack:
        states = await paired.serving(stack, apps)
        for n in range(WARMUP + REQUESTS):
            for build, app in apps.items():
                lines.setLevel(logging.INFO if build == "observed" else logging.WARNING)  # LOG_LEVEL
                started = time.process_time()
                await levers.call(app, "GET", f"/users/{1 + n % 900}", states[build])
                if n >= WARMUP:
                    cpu[build].append(time.process_time() - started)
    return {build: statistics.mean(samples) * 1e6 for build, samples in cpu.items()}


def main() -> int:
    if paired.is_child():
        return paired.child_main(child)
    started = datetime.now(UTC)
    runs = paired.in_fresh_processes("bench.observability", BUILDS, RUNS)
    paired.write_results(
        "observability", started, "What observability costs a get-one",
        f"{RUNS} processes, each building users-api's app two ways and calling them in turn, one GET /users/{{id}} "
        f"each, {REQUESTS} times after {WARMUP}, in an order that rotates from run to run, ASGI in-process on the "
        "embedded PostgreSQL (1,000 users). Mean CPU µs of this process per request (time.process_time(); "
        "PostgreSQL's CPU not counted; uvicorn's HTTP work not included: a share of a request served over HTTP "
        "is smaller).",
        ["as configured by default", "unobserved", "default over unobserved"],
        lambda r: [f"{r['observed']:.1f}", f"{r['unobserved']:.1f}",
                   f"{r['observed'] - r['unobserved']:+.1f} ({r['observed'] / r['unobserved'] - 1:+.1%})"],
        runs,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
