"""`make bench`: users-api beside the ORM way and the ceilings, on one PostgreSQL, in one run.

Every system gets the same load (wrk, 64 connections, warm-up discarded), the same database and
data, in rounds whose order rotates. Writes bench/results/<timestamp>.md and a PNG chart (the folder
is git-ignored; docs/benchmarks.md quotes the latest run).
"""

import argparse
import asyncio
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from api.ops.cluster import Cluster, EmbeddedCluster, cluster_for, find_available_port
from bench import dbceiling, procstat, report, systems, wrk
from bench.identity import AUDIENCE, identity_provider
from bench.report import SYSTEMS, WORKLOADS, Run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCH_DATABASE = "users_api_bench"
TWO_WORKERS = 2  # users-api-2w: WORKERS=2, beside one worker, on the same two cores
UNCOALESCED = "users-api-uncoalesced"  # COALESCE_READS, COALESCE_CREATES false: what one statement for many buys
GC_UNTUNED = "users-api-gc-default"  # GC_YOUNG_THRESHOLD=0: what collecting garbage rarely buys
UNOBSERVED = "users-api-unobserved"  # METRICS=false, LOG_LEVEL=warning: what observability costs
AUTHENTICATED = "users-api-auth"  # AUTH_ISSUER: every request's bearer token verified, what that costs
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", socket.gethostname())

# Fixed statements of the harness's own (not the service's): a fresh database for every run.
DROP_DATABASE = "DROP DATABASE IF EXISTS users_api_bench WITH (FORCE)"
CREATE_DATABASE = "CREATE DATABASE users_api_bench"
VACUUM = "VACUUM (ANALYZE) users"
FIRST_EMAIL = "SELECT email FROM users ORDER BY id LIMIT 1"  # user0.<tag>@example.com: the seed's tag
ALONE = {"get_alone": 1}  # workloads of one connection, a request at a time, whatever --connections says
BACKEND_PID = "SELECT pg_backend_pid()"
SETTINGS = (
    "SELECT name, setting, unit FROM pg_settings WHERE name IN ("
    "'server_version', 'shared_buffers', 'effective_cache_size', 'work_mem', 'max_connections', "
    "'fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'jit', 'random_page_cost', "
    "'max_wal_size', 'checkpoint_timeout') ORDER BY name"
)


@dataclass(frozen=True)
class Config:
    rounds: int
    warmup: float
    seconds: float
    rows: int
    connections: int
    db_connections: int
    workers: int
    quick: bool
    systems: tuple[str, ...] = tuple(SYSTEMS)
    workloads: tuple[str, ...] = tuple(WORKLOADS)
    against: str | None = None  # a commit whose users-api runs beside this checkout's, as `users-api@<commit>`


@dataclass(frozen=True)
class BenchDatabase:
    """The database every system of a run is measured on, and where its server's CPU is read."""

    url: str
    server: dbceiling.Server
    postmaster_pid: int | None
    bin_dir: Path | None
    embedded: bool


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about four minutes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds discarded before each measurement")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--rows", type=int, default=1_000_000, help="users seeded before measuring")
    parser.add_argument("--connections", type=int, default=64, help="HTTP connections of the load")
    parser.add_argument("--db-connections", type=int, default=10, help="connections of the database ceilings")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of every HTTP system")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset, for quick A/B runs")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset")
    parser.add_argument(
        "--against",
        metavar="COMMIT",
        help="also users-api as it was at COMMIT (run from a git worktree of it), beside this checkout's: what a "
        "change bought, measured in one run",
    )
    args = parser.parse_args(argv)
    if args.against and args.systems == parser.get_default("systems"):
        # Eleven HTTP systems' pools and the database ceiling's outgrow PostgreSQL's 100 connections.
        parser.error("--against adds a system: name the others to measure beside it with --systems")
    if args.quick:
        args.rounds, args.warmup, args.seconds, args.rows = 1, 1.0, 2.0, 20_000
    return Config(
        rounds=args.rounds,
        warmup=args.warmup,
        seconds=args.seconds,
        rows=args.rows,
        connections=args.connections,
        db_connections=args.db_connections,
        workers=args.workers,
        quick=args.quick,
        systems=tuple(args.systems.split(",")),
        workloads=tuple(args.workloads.split(",")),
        against=args.against,
    )


@contextmanager
def database(pgdata: Path) -> Iterator[BenchDatabase]:
    """The bench database on DATABASE_URL's server, or on an embedded one (its files in `pgdata`) over TCP."""
    with cluster_for(os.environ.get("DATABASE_URL"), pgdata) as cluster:
        yield _bench_database(cluster)


def _bench_database(cluster: Cluster) -> BenchDatabase:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(DROP_DATABASE)
        conn.execute(CREATE_DATABASE)
        backend = conn.execute(BACKEND_PID).fetchone()
    postmaster = cluster.postmaster_pid()
    local = cluster.host in LOCAL_HOSTS or cluster.host.startswith("/")  # TCP on this machine, or its socket
    if postmaster is None and backend is not None and local:
        # A server given by URL that runs here: its PostgreSQL CPU is its backends' parent's. Asking it is
        # SQL, which the harness may run and api/ does not: hence here, not in RunningCluster.
        postmaster = procstat.parent_of(backend[0])
    server = dbceiling.Server(cluster.host, cluster.port, cluster.user, cluster.password, BENCH_DATABASE)
    embedded = isinstance(cluster, EmbeddedCluster)
    return BenchDatabase(
        url=cluster.url(BENCH_DATABASE),
        server=server,
        postmaster_pid=postmaster,
        bin_dir=cluster.bin_dir,
        embedded=embedded,
    )


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def populate(db: BenchDatabase, rows: int) -> tuple[float, str, str]:
    """Migrate and seed through the service's own command line; return rows/s, the command and the tag of
    the seeded emails (user<n>.<tag>@example.com), which the lookups ask for."""
    command = [sys.executable, "-m", "api", "seed", str(rows)]
    done = subprocess.run(  # noqa: S603
        command,
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"DATABASE_URL": db.url, "LOG_LEVEL": "info"},
    )
    rate = float(re.search(r"seeded \d+ users: (\d+) rows/s", done.stderr).group(1))  # type: ignore[union-attr]
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(VACUUM)
        first = conn.execute(FIRST_EMAIL).fetchone()
    tag = str(first[0]).removeprefix("user0.").removesuffix("@example.com") if first else ""
    return rate, "DATABASE_URL=... users-api seed " + str(rows), tag


def measure_http(system: systems.System, workload: str, config: Config, db: BenchDatabase) -> Run:
    tag = secrets.token_hex(4)
    connections = ALONE.get(workload, config.connections)
    warm = wrk.run(system.url, workload, config.rows, tag + "w", connections, config.warmup)
    cpu_api, cpu_pg = procstat.cpu_seconds(system.pid), _pg_cpu(db)
    result = wrk.run(system.url, workload, config.rows, tag, connections, config.seconds)
    cpu_api, cpu_pg = procstat.cpu_seconds(system.pid) - cpu_api, _pg_cpu(db) - cpu_pg
    per_request = 1e6 / max(result.requests, 1)
    return Run(
        round=0,
        system=system.name,
        workload=workload,
        rps=result.requests / result.seconds,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors + warm.errors,
        api_cpu_us=cpu_api * per_request,
        pg_cpu_us=cpu_pg * per_request if db.postmaster_pid else None,
        api_rss_mib=procstat.peak_rss_mib(system.pid),
    )


def measure_asyncpg(workload: str, config: Config, db: BenchDatabase) -> Run:
    cpu_pg = _pg_cpu(db)
    started = time.perf_counter()
    measured = asyncio.run(
        dbceiling.drive_asyncpg(
            db.url,
            workload,
            config.rows,
            secrets.token_hex(4),
            config.db_connections,
            config.warmup,
            config.seconds,
        )
    )
    # The PostgreSQL CPU of the warm-up is in this delta too; spread over the whole run's operations.
    elapsed = time.perf_counter() - started
    cpu_pg = _pg_cpu(db) - cpu_pg
    operations = measured.requests * elapsed / measured.seconds
    return _database_run("db-asyncpg", workload, measured, cpu_pg * 1e6 / max(operations, 1), db)


def measure_pgbench(
    pgbench: Path, scripts: dict[str, Path], workload: str, config: Config, db: BenchDatabase
) -> tuple[Run, list[str]]:
    connections = config.db_connections
    warm = dbceiling.pgbench_command(
        pgbench, scripts, workload, config.rows, connections, max(config.warmup, 1), db.server
    )
    dbceiling.run_pgbench(warm, db.server)
    command = dbceiling.pgbench_command(pgbench, scripts, workload, config.rows, connections, config.seconds, db.server)
    cpu_pg = _pg_cpu(db)
    measured = dbceiling.run_pgbench(command, db.server)
    cpu_pg = _pg_cpu(db) - cpu_pg
    return _database_run("db-pgbench", workload, measured, cpu_pg * 1e6 / max(measured.requests, 1), db), command


def _database_run(system: str, workload: str, measured: dbceiling.Measured, pg_cpu_us: float, db: BenchDatabase) -> Run:
    """A database ceiling's run: no HTTP, so no API process; PostgreSQL's CPU when its process is known."""
    return Run(
        round=0,
        system=system,
        workload=workload,
        rps=measured.requests / measured.seconds,
        p50_ms=measured.p50_ms,
        p99_ms=measured.p99_ms,
        errors=0,
        api_cpu_us=None,
        pg_cpu_us=pg_cpu_us if db.postmaster_pid else None,
        api_rss_mib=None,
    )


def _pg_cpu(db: BenchDatabase) -> float:
    return procstat.cpu_seconds(db.postmaster_pid, with_reaped_children=True) if db.postmaster_pid else 0.0


def fetch_bodies(system: systems.System, path: Path) -> None:
    """Real users-api responses, for the HTTP ceiling to serve as bytes."""
    user = httpx.get(f"{system.url}/users/1").json()
    page = httpx.get(f"{system.url}/users", params={"limit": 100, "after": 0}).json()
    path.write_text(json.dumps({"user": user, "page": page}), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    if wrk.ensure_wrk() is None:
        print(f"bench: {wrk.INSTALL_HINT}", file=sys.stderr)
        return 2
    if config.against is not None:  # named by its hash: a branch or HEAD~1 means another commit tomorrow
        config = replace(config, against=_git("rev-parse", "--short", "--verify", f"{config.against}^{{commit}}"))
    started = datetime.now(UTC)
    runs: list[Run] = []
    commands: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory() as scratch,
        checkout(config.against, Path(scratch) / "against") as earlier,
        database(ROOT / ".pgdata-bench") as db,
        identity_provider() as provider,
    ):
        logs = Path(scratch)
        # users-api-auth's token, sent with every request of the load (the others ignore it): one client's,
        # as a client reuses its token until it expires, which outlasts the run.
        os.environ["BENCH_TOKEN"] = provider.token(lifetime=6 * 3600)
        progress(f"seeding {config.rows:,} users")
        seed_rate, commands["seed"], os.environ["BENCH_SEED_TAG"] = populate(db, config.rows)
        progress(f"seeded at {seed_rate:,.0f} rows/s")
        api = systems.users_api(db.url, find_available_port(), config.workers)
        http = [
            api,
            systems.users_api(db.url, find_available_port(), config.workers, name=UNCOALESCED, coalesced=False),
            systems.users_api(db.url, find_available_port(), config.workers, name=GC_UNTUNED, gc_tuned=False),
            systems.users_api(db.url, find_available_port(), TWO_WORKERS, name="users-api-2w"),
            systems.users_api(db.url, find_available_port(), config.workers, name=UNOBSERVED, observed=False),
            systems.users_api(
                db.url,
                find_available_port(),
                config.workers,
                name=AUTHENTICATED,
                issuer=provider.issuer,
                audience=AUDIENCE,
            ),
            systems.raw_minimal(db.url, find_available_port(), config.workers),
            systems.orm(db.url, find_available_port(), config.workers),
        ]
        chosen = set(config.systems)
        if earlier is not None:
            name = f"users-api@{config.against}"
            before = systems.users_api(db.url, find_available_port(), config.workers, name=name)
            http.append(replace(before, cwd=earlier))
            chosen.add(name)
        # Every system stopped, whatever fails: each runs in a session of its own, out of Ctrl-C's reach.
        try:
            api.start(logs)
            fetch_bodies(api, logs / "bodies.json")  # the bodies the HTTP ceiling serves
            http.append(systems.http_ceiling(logs / "bodies.json", find_available_port(), config.workers))
            http = [system for system in http if system is api or system.name in chosen]
            for system in http[1:]:
                system.start(logs)
            pgbench = dbceiling.find_pgbench(db.bin_dir)
            measurers: list[tuple[str, Callable[[str], Run]]] = [
                *((s.name, lambda w, s=s: measure_http(s, w, config, db)) for s in http),
                ("db-asyncpg", lambda w: measure_asyncpg(w, config, db)),
            ]
            if pgbench is not None:
                scripts = dbceiling.pgbench_scripts(logs)
                measurers.append(
                    ("db-pgbench", lambda w: _record(measure_pgbench(pgbench, scripts, w, config, db), commands))
                )
            measurers = [(name, measure) for name, measure in measurers if name in chosen]
            for round_number in range(1, config.rounds + 1):
                shift = (round_number - 1) % len(measurers)
                order = measurers[shift:] + measurers[:shift]
                for workload in config.workloads:
                    for name, measure in order:
                        if name.startswith("db-") and workload not in dbceiling.WORKLOADS:
                            continue  # a database ceiling of HTTP's lookups and lone client is not measured
                        run = measure(workload)
                        run.round = round_number
                        runs.append(run)
                        progress(f"round {round_number}/{config.rounds} {workload:<10} {name:<12} {_line(run)}")
        finally:
            for system in http:
                system.stop()
        commands |= {
            "load": " ".join(wrk.command("http://127.0.0.1:PORT", config.connections, config.seconds))
            + f"  (env BENCH_WORKLOAD, BENCH_ROWS, BENCH_TAG, BENCH_SEED_TAG; -c1 for {', '.join(ALONE)})",
            **{
                s.name: " ".join(s.command) + ("" if s.cwd == ROOT else f"  (in a git worktree of {config.against})")
                for s in http
            },
        }
        with psycopg.connect(db.url) as conn:
            pg_settings = conn.execute(SETTINGS).fetchall()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    markdown, chart = report.write(
        RESULTS / f"{stamp}.md",
        runs,
        config=asdict(config),
        seed_rate=seed_rate,
        commands=commands,
        pg_settings=pg_settings,
        started=started,
        embedded=db.embedded,
    )
    progress(f"wrote {markdown.relative_to(ROOT)} and {chart.relative_to(ROOT)}")
    invalid = [run for run in runs if not run.valid]
    if invalid:
        progress(f"{len(invalid)} runs had errors and are marked invalid")
    return 1 if invalid else 0


@contextmanager
def checkout(commit: str | None, folder: Path) -> Iterator[Path | None]:
    """A git worktree of `commit` in `folder` while the block runs, removed after; None without a commit."""
    if commit is None:
        yield None
        return
    _git("worktree", "add", "--detach", str(folder), commit)
    try:
        yield folder
    finally:
        try:
            _git("worktree", "remove", "--force", str(folder))
        except RuntimeError as error:  # said, not raised: it would hide what ended the block
            progress(f"the worktree is left behind ({error}); `git worktree prune` forgets it once its folder is gone")


def _git(*args: str) -> str:
    """git's output for `args` in this checkout; RuntimeError with git's own words if it fails."""
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)  # noqa: S603, S607
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _record(measured: tuple[Run, list[str]], commands: dict[str, str]) -> Run:
    run, command = measured
    commands["pgbench"] = " ".join(command)
    return run


def _line(run: Run) -> str:
    cpu = f" API {run.api_cpu_us:.0f} µs/req" if run.api_cpu_us is not None else ""
    errors = f"  {run.errors} ERRORS (invalid)" if run.errors else ""
    return f"{run.rps:>9,.0f} req/s  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms{cpu}{errors}"


if __name__ == "__main__":
    raise SystemExit(main())
