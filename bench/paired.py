"""Builds of one app measured paired, request by request: the runner `make bench-observability` and
`make bench-auth` share.

Each run is a fresh process (`python -m <module> child`) on the bench's database of 1,000 users, which
calls every build in turn, request by request, in an order that rotates from run to run, so that
neither the drift of two shared cores nor the build called first falls on one build alone.
"""

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import uvloop
from fastapi import FastAPI

from bench import report
from bench import run as bench

Child = Callable[[str, list[str]], Coroutine[Any, Any, dict[str, float]]]


def in_fresh_processes(module: str, builds: Sequence[str], runs: int) -> list[dict[str, float]]:
    """Each run's mean CPU µs per request of every build, as `module`'s child measured them."""
    measured: list[dict[str, float]] = []
    with bench.database(bench.ROOT / ".pgdata-bench") as db:
        bench.populate(db, 1000)
        for run in range(1, runs + 1):
            shift = run % len(builds)
            order = ",".join([*builds[shift:], *builds[:shift]])
            done = subprocess.run(  # noqa: S603 - this interpreter, a module of the bench's own
                [sys.executable, "-m", module, "child"],
                env=os.environ | {"BENCH_URL": db.url, "BENCH_ORDER": order},
                cwd=bench.ROOT, capture_output=True, text=True, check=True,
            )  # fmt: skip
            measured.append(json.loads(done.stdout.splitlines()[-1]))
            bench.progress(f"run {run}/{runs}: " + ", ".join(f"{b} {us:.1f} µs" for b, us in measured[-1].items()))
    return measured


def is_child() -> bool:
    return sys.argv[1:] == ["child"]


def child_main(child: Child) -> int:
    """In the child process: measure, and print the means as one JSON line for the parent."""
    print(json.dumps(uvloop.run(child(os.environ["BENCH_URL"], os.environ["BENCH_ORDER"].split(",")))))
    return 0


async def serving(stack: AsyncExitStack, apps: Mapping[str, FastAPI]) -> dict[str, dict[str, Any]]:
    """Each app's lifespan entered on `stack` (left when it closes); each app's state, by build."""
    states = {}
    for build, app in apps.items():
        lifespan: AbstractAsyncContextManager[Any] = app.router.lifespan_context(app)
        states[build] = dict(await stack.enter_async_context(lifespan))
    return states


def write_results(
    kind: str,
    started: datetime,
    title: str,
    method: str,
    columns: Sequence[str],
    cells: Callable[[dict[str, float]], Sequence[str]],
    runs: list[dict[str, float]],
) -> Path:
    """bench/results/<kind>-<timestamp>.md: what was measured and how, then a row per run and their mean."""
    mean = {build: statistics.mean(run[build] for run in runs) for build in runs[0]}
    rows = [f"| {n} | {' | '.join(cells(run))} |" for n, run in [*enumerate(runs, 1), ("mean", mean)]]
    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    out = bench.RESULTS / f"{kind}-{started:%Y%m%dT%H%M%SZ}.md"
    out.write_text(
        f"# {title}, {started:%Y-%m-%d %H:%M} UTC\n\n"
        f"Produced by `make bench-{kind}` (`python -m bench.{kind}`) at {report.commit()}: {method}\n\n"
        f"| run | {' | '.join(columns)} |\n|--:|{'--:|' * len(columns)}\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    bench.progress(f"wrote {out.relative_to(bench.ROOT)}")
    return out
