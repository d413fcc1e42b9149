"""`make bench-observability`: what seeing inside costs a get-one, in CPU, request by request.

Two builds of users-api's app in one process, on one database: as configured by default (a log
line per request, metrics), and unobserved (METRICS=false, LOG_LEVEL=warning: the trace id stays, it
is the contract). Their requests alternate one by one, so that the drift of two shared cores, which
moves `make bench`'s rounds far more than this costs (docs/benchmarks.md), falls on the two alike;
time.process_time() around each request counts this process's CPU only (PostgreSQL's is not). The
log lines go to /dev/null through the service's own handler, flushed as it flushes them. Each run
is a fresh process; RUNS of them. Writes bench/results/observability-<timestamp>.md.
"""

import json
import logging
import logging.config
import os
import statistics
import subprocess
import sys
import time
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import uvloop

from api.app import create_app
from api.ops.logging_config import logging_config
from api.settings import Settings
from bench import levers, report
from bench import run as bench

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
        states = {}
        for build, app in apps.items():
            lifespan: AbstractAsyncContextManager[Any] = app.router.lifespan_context(app)
            states[build] = dict(await stack.enter_async_context(lifespan))
        for n in range(WARMUP + REQUESTS):
            for build, app in apps.items():
                lines.setLevel(logging.INFO if build == "observed" else logging.WARNING)  # LOG_LEVEL
                started = time.process_time()
                await levers.call(app, "GET", f"/users/{1 + n % 900}", states[build])
                if n >= WARMUP:
                    cpu[build].append(time.process_time() - started)
    return {build: statistics.mean(samples) * 1e6 for build, samples in cpu.items()}


def main() -> int:
    if sys.argv[1:] == ["child"]:
        print(json.dumps(uvloop.run(child(os.environ["BENCH_URL"], os.environ["BENCH_ORDER"].split(",")))))
        return 0
    started = datetime.now(UTC)
    runs: list[dict[str, float]] = []
    with bench.database(bench.ROOT / ".pgdata-bench") as db:
        bench.populate(db, 1000)
        for run in range(1, RUNS + 1):
            shift = run % len(BUILDS)
            order = ",".join(BUILDS[shift:] + BUILDS[:shift])
            done = subprocess.run(
                [sys.executable, "-m", "bench.observability", "child"],
                env=os.environ | {"BENCH_URL": db.url, "BENCH_ORDER": order},
                cwd=bench.ROOT, capture_output=True, text=True, check=True,
            )  # fmt: skip
            runs.append(json.loads(done.stdout.splitlines()[-1]))
            bench.progress(f"run {run}/{RUNS}: " + ", ".join(f"{b} {us:.1f} µs" for b, us in runs[-1].items()))
    mean = {build: statistics.mean(run[build] for run in runs) for build in BUILDS}
    rows = "\n".join(
        f"| {n} | {r['observed']:.1f} | {r['unobserved']:.1f} | "
        f"{r['observed'] - r['unobserved']:+.1f} ({r['observed'] / r['unobserved'] - 1:+.1%}) |"
        for n, r in [*enumerate(runs, 1), ("mean", mean)]
    )
    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    out = bench.RESULTS / f"observability-{started:%Y%m%dT%H%M%SZ}.md"
    out.write_text(
        f"# What observability costs a get-one, {started:%Y-%m-%d %H:%M} UTC\n\n"
        f"Produced by `make bench-observability` (`python -m bench.observability`) at {report.commit()}: {RUNS} "
        f"processes, each building users-api's app two ways and calling them in turn, one GET /users/{{id}} each, "
        f"{REQUESTS} times after {WARMUP}, in an order that rotates from run to run, ASGI in-process "
        "on the embedded PostgreSQL (1,000 users). "
        "Mean CPU µs of this process per request (time.process_time(); PostgreSQL's CPU not counted; "
        "uvicorn's HTTP work not included: a share of a request served over HTTP is smaller).\n\n"
        "| run | as configured by default | unobserved | default over unobserved |\n|--:|--:|--:|--:|\n" + rows + "\n",
        encoding="utf-8",
    )
    bench.progress(f"wrote {out.relative_to(bench.ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
