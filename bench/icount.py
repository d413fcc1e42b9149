"""`make bench-icount`: the levers and the whole apps in instructions per request, counted by callgrind.

CPU time on two shared cores drifts between runs by more than most levers save (docs/benchmarks.md);
valgrind's callgrind counts the instructions the API's process executes, the same each time for
the same code and requests. Each figure is the difference of two runs of one app in a process of
its own (N and 4N requests after the same warm-up), divided by 3N: start-up and imports cancel out.
PostgreSQL's work is not counted (another process). Writes bench/results/icount-<timestamp>.md.
"""

import argparse
import asyncio
import json
import logging.config
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import asyncpg
import uvloop

from api.app import create_app
from api.ops.logging_config import logging_config
from api.settings import Settings
from bench import levers, report, tools
from bench import run as bench
from bench.baselines import raw_minimal

REQUESTS = 100  # N: the runs make N and 4N requests
WARMUP = 50
# (row, without: (app, request), with: (app, request)): the variants of bench/levers.py, "service" having
# every lever; then the whole apps, users-api against raw-minimal.
LEVERS = [
    *((f"{lever} (get one)", (variant, "get"), ("service", "get")) for lever, _, variant, _ in levers.LEVERS),
    ("a page as one row, json_agg in PostgreSQL (list of 100)", ("service", "joined"), ("service", "page")),
]
# What parts of the contract cost, kept whatever they cost: "with" is users-api's side, "without" the cheaper one.
COSTS = [
    *((f"{part} (get one)", (variant, "get"), ("service", "get")) for part, _, variant, _ in levers.COSTS),
    ("observability as configured by default: a log line per request, metrics (get one)",
     ("users-api-unobserved", "get"), ("users-api", "get")),
]  # fmt: skip
# What coalesced reads save (COALESCE_READS): a get-one alone, which runs its own file as before, and 64 at once.
COALESCED = [
    ("a get-one alone", ("users-api-uncoalesced", "get"), ("users-api", "get")),
    ("64 get-ones at once", ("users-api-uncoalesced", "get_64"), ("users-api", "get_64")),
]
WHOLE = ["get", "create", "list_start", "get_64"]
WHOLE_JOBS = [(app, workload) for workload in WHOLE for app in ("users-api", "raw-minimal")]
COLLECTED = re.compile(r"Collected : (\d+)")


async def child(app_name: str, request_name: str, count: int, url: str) -> None:
    """The measured process: build one app, then WARMUP + count requests of one kind."""
    tag = f"{app_name}.{os.getpid()}.{count}"
    async with AsyncExitStack() as stack:
        if app_name in ("users-api", "users-api-unobserved", "users-api-uncoalesced", "raw-minimal"):
            os.environ["DATABASE_URL"] = url  # raw-minimal's lifespan reads it
            # Waits are 50 times longer under valgrind: a timeout would answer 503 where none is under test.
            # As `users-api serve` runs them: its logging, metrics on.
            observed = app_name in ("users-api", "users-api-uncoalesced")
            settings = Settings(
                _env_file=None, database_url=url, pool_acquire_timeout=600, command_timeout=600, metrics=observed,
                coalesce_reads=app_name != "users-api-uncoalesced",
            )  # fmt: skip
            if observed:
                logging.config.dictConfig(logging_config("info", "text"))  # its lines go to the captured stderr
            app = raw_minimal.app if app_name == "raw-minimal" else create_app(settings)
            lifespan: AbstractAsyncContextManager[Any] = app.router.lifespan_context(app)
            state = dict(await stack.enter_async_context(lifespan) or {})
        else:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=1, reset=raw_minimal.no_reset)
            stack.push_async_callback(pool.close)
            app = levers.variants()[app_name]
            state = {"pooled": levers.Pooled(pool)}
        if request_name == "get_64":  # 64 clients at once share the requests: most wait for a connection
            numbers = iter(range(WARMUP + count))

            async def client() -> None:
                for n in numbers:
                    await levers.call(app, "GET", f"/users/{1 + n % 1000}", state)

            await asyncio.gather(*(client() for _ in range(levers.CONCURRENT)))
            return
        for n in range(WARMUP + count):
            if request_name == "get":
                await levers.call(app, "GET", f"/users/{1 + n % 1000}", state)
            elif request_name == "create":
                body = json.dumps({"email": f"icount{tag}.{n}@example.com", "name": "Icount"}).encode()
                await levers.call(app, "POST", "/users", state, body=body)
            elif request_name == "list_start":
                await levers.call(app, "GET", "/users", state, query=f"limit=100&after={n % 500}".encode())
            else:  # the page lever: "page" (one row) or "joined" (101 rows)
                query = f"after={n % 500}" + ("&joined=true" if request_name == "joined" else "")
                await levers.call(app, "GET", "/users", state, query=query.encode())


def instructions(valgrind: str, app_name: str, request_name: str, url: str) -> float:
    """Instructions per request of `app_name` answering `request_name`."""
    counts = []
    # As `users-api serve` sets it up: each worker's figures in files of a fresh folder.
    metrics = (
        {"PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="icount-metrics-")}
        if app_name in ("users-api", "users-api-uncoalesced")
        else {}
    )
    for count in (REQUESTS, 4 * REQUESTS):
        done = subprocess.run(  # noqa: S603 - valgrind running this module, arguments built here
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m", "bench.icount",
             "--child", app_name, request_name, str(count)],
            capture_output=True, text=True, check=True, env=os.environ | {"ICOUNT_DATABASE_URL": url} | metrics,
        )  # fmt: skip
        found = COLLECTED.search(done.stderr)
        if found is None:
            raise RuntimeError(f"callgrind printed no instruction count:\n{done.stderr[-2000:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (3 * REQUESTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-icount", description=__doc__)
    parser.add_argument("--child", nargs=3, metavar=("APP", "REQUEST", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        app_name, request_name, count = args.child
        uvloop.run(child(app_name, request_name, int(count), os.environ["ICOUNT_DATABASE_URL"]))
        return 0
    valgrind = tools.ensure("valgrind", package="valgrind")
    if valgrind is None:
        print(f"bench: {tools.install_hint('valgrind')}", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    jobs = list(dict.fromkeys([side for _, *sides in LEVERS + COSTS + COALESCED for side in sides] + WHOLE_JOBS))
    with bench.database(bench.ROOT / ".pgdata-bench") as db:
        bench.populate(db, 10_000)

        def count(job: tuple[str, str]) -> float:
            return instructions(valgrind, job[0], job[1], db.url)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as workers:  # counts do not depend on load
            found = dict(zip(jobs, workers.map(count, jobs), strict=True))
    lines = [
        f"# Instructions per request, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Produced by `make bench-icount` (`python -m bench.icount`) at {report.commit()}: valgrind's callgrind "
        "counting the "
        f"instructions of the API's process, the difference between runs of {REQUESTS} and {4 * REQUESTS} "
        f"requests (after {WARMUP} more) divided by {3 * REQUESTS}, ASGI app called in-process, on the "
        "embedded PostgreSQL with 10,000 seeded users. The same code and requests give the same counts "
        "within about 2%, whatever else the machine does.",
        "",
        "| lever | without, instructions/request | with | saved |",
        "|---|--:|--:|--:|",
        *(f"| {lever} | {found[a]:,.0f} | {found[b]:,.0f} | {100 * (found[a] - found[b]) / found[a]:.0f}% |"
          for lever, a, b in LEVERS),
        "",
        "What parts of the contract cost, kept whatever they cost:",
        "",
        "| part | without, instructions/request | with | cost |",
        "|---|--:|--:|--:|",
        *(f"| {part} | {found[a]:,.0f} | {found[b]:,.0f} | {100 * (found[b] - found[a]) / found[a]:+.0f}% |"
          for part, a, b in COSTS),
        "",
        "What coalesced reads save (COALESCE_READS, users-api's default; the other side with it false):",
        "",
        "| get one | uncoalesced, instructions/request | coalesced | saved |",
        "|---|--:|--:|--:|",
        *(f"| {what} | {found[a]:,.0f} | {found[b]:,.0f} | {100 * (found[a] - found[b]) / found[a]:.0f}% |"
          for what, a, b in COALESCED),
        "",
        "get_64: get one with 64 requests at once on the pool of 10 connections, so that most wait for one.",
        "",
        "| workload | users-api instructions/request | raw-minimal | ratio |",
        "|---|--:|--:|--:|",
        *(f"| {w} | {found['users-api', w]:,.0f} | {found['raw-minimal', w]:,.0f} "
          f"| {found['users-api', w] / found['raw-minimal', w]:.2f} |" for w in WHOLE),
        "",
    ]  # fmt: skip
    levers.publish("icount", started, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
