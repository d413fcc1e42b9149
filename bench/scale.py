"""`make bench-scale`: users-api on several hosts of this one machine, measured.

Three topologies: 1 API host and no standby, 2 hosts and 1 standby, 3 hosts and 2 standbys. HAProxy (least
connections, /ready checks) is in front of the hosts, PgBouncer (transaction mode) in front of the primary, and
every host (each API host, the primary with PgBouncer, each standby) is capped at the same CPU share
(bench/deployment.py). For each: get-one, list and create over HTTP with wrk, and the primary's server
connections. Then a standby killed with -9 mid-run, and stale reads with and without the Consistency-Token on
a standby 300 ms behind. Writes bench/results/scale-<timestamp>.md and .png.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg

from api.ops.cluster import DATABASE, EmbeddedCluster, find_available_port
from api.ops.standby import EmbeddedReplica
from bench import deployment, scale_report, tools, wrk
from bench import run as bench
from bench.deployment import CpuCaps
from bench.scale_report import POOL_SIZE, ROLES, Measured, Stale

TOPOLOGIES = ((1, 0), (2, 1), (3, 2))  # (API hosts, standbys)
WORKLOADS = ("get", "list_start", "create")
PAIRS = 1000  # write-then-read pairs that carry the token
UNTOKENED_PAIRS = 200
STALE_DELAY = "300ms"
SERVER_CONNECTIONS = "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND backend_type = 'client backend'"
FRESH = "TRUNCATE users, idempotency_keys RESTART IDENTITY"
AS_ROOT = (
    "bench-scale: run it as root (`sudo make bench-scale`): it installs haproxy and pgbouncer with apt-get and "
    "caps each host with a CPU cgroup"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench-scale", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds measured per workload")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds discarded before each")
    parser.add_argument("--share", type=float, default=0.3, help="CPU share of a core each host is capped at")
    parser.add_argument("--rows", type=int, default=100_000, help="users seeded")
    parser.add_argument("--connections", type=int, default=64, help="HTTP connections of the load, per API host")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every topology and workload")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, 2 s per workload, 20,000 users")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.rows, args.rounds = 2.0, 1.0, 20_000, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print(AS_ROOT, file=sys.stderr)
        return 2
    programs = {name: tools.ensure(name, package=name) for name in ("wrk", "haproxy", "pgbouncer")}
    missing = [name for name, path in programs.items() if path is None]
    if missing:
        print(f"bench-scale: {', '.join(missing)} could not be installed with apt-get", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    caps = CpuCaps(args.share)
    folder = Path(tempfile.mkdtemp(prefix="users-api-bench-scale-"))
    try:
        with EmbeddedCluster(bench.ROOT / ".pgdata-scale", find_available_port()) as primary:
            caps.join("primary", primary.postmaster_pid() or -1)
            found = primary.service()
            seed(found.app_url, found.owner_url, args.rows)
            with ExitStack() as stack:
                replicas = [stack.enter_context(EmbeddedReplica(primary, number)) for number in (1, 2)]
                for number, replica in enumerate(replicas, 1):
                    caps.join(f"replica-{number}", replica.postmaster_pid() or -1)
                _, app = primary.service_roles()
                bouncer = stack.enter_context(
                    deployment.pgbouncer(str(programs["pgbouncer"]), caps, "primary", primary.port, DATABASE,
                                         (app.name, app.password), POOL_SIZE)
                )  # fmt: skip
                through_bouncer = f"postgresql://{quote(app.name)}:{quote(app.password)}@127.0.0.1:{bouncer}/{DATABASE}"
                counted = Counting(primary.url(DATABASE), app.name)
                results = []
                for rotation, (hosts, standbys) in rounds(args.rounds):
                    bench.progress(f"round {rotation + 1}: {hosts} API host(s), {standbys} standby(s)")
                    env = service_env(through_bouncer, [replica.service().app_url for replica in replicas[:standbys]])
                    with topology(caps, str(programs["haproxy"]), hosts, env, folder) as url:
                        results += [
                            measure(url, hosts, standbys, workload, args, counted, caps) for workload in WORKLOADS
                        ]
                bench.progress("a standby killed with -9 mid-run (2 hosts, 1 standby)")
                env = service_env(through_bouncer, [replicas[0].service().app_url])
                with topology(caps, str(programs["haproxy"]), 2, env, folder) as url:
                    killed = kill_mid_run(url, replicas[0], caps, args)
                bench.progress(f"stale reads on a standby {STALE_DELAY} behind")
                delayed = stack.enter_context(EmbeddedReplica(primary, 3, apply_delay=STALE_DELAY))
                caps.join("replica-3", delayed.postmaster_pid() or -1)
                env = service_env(through_bouncer, [delayed.service().app_url])
                with topology(caps, str(programs["haproxy"]), 1, env, folder) as url:
                    stale = stale_reads(url)
        write(started, args, caps, results, killed, stale)
    finally:
        caps.remove()
    return 0


def rounds(count: int) -> Iterator[tuple[int, tuple[int, int]]]:
    """(round, topology), the topologies in rotated order from one round to the next, so that drift spreads."""
    for rotation in range(count):
        for index in range(len(TOPOLOGIES)):
            yield rotation, TOPOLOGIES[(index + rotation) % len(TOPOLOGIES)]


def seed(app_url: str, owner_url: str, rows: int) -> None:
    """A users table of `rows` users, ids from 1, through the service's own `users-api seed`."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone()
        if exists and exists[0]:
            conn.execute(FRESH)
    env = {"DATABASE_URL": app_url, "OWNER_DATABASE_URL": owner_url}
    done = subprocess.run(  # noqa: S603 - this Python running the service's own command line
        [sys.executable, "-m", "api", "seed", str(rows)], env=os.environ | env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"users-api seed failed: {done.stderr[-800:]}")
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(bench.VACUUM)


def service_env(primary_url: str, replica_urls: list[str]) -> dict[str, str]:
    """What each API host runs with: the primary through PgBouncer 1.18, which keeps no prepared statements."""
    return {
        "DATABASE_URL": primary_url,
        "DATABASE_REPLICA_URLS": ",".join(replica_urls),
        "STATEMENT_CACHE_SIZE": "0",
        "MIGRATE_ON_SERVE": "false",
        "LOG_LEVEL": "warning",
    }


@contextmanager
def topology(caps: CpuCaps, haproxy: str, hosts: int, env: dict[str, str], folder: Path) -> Iterator[str]:
    """`hosts` API hosts, each in a cgroup of its own, behind HAProxy; its URL."""
    with ExitStack() as stack:
        urls = [
            stack.enter_context(deployment.api_host(caps, f"api-{number}", env, folder))
            for number in range(1, hosts + 1)
        ]
        yield stack.enter_context(deployment.haproxy(haproxy, caps, urls, folder))


class Counting:
    """The primary's server connections of the app role (PgBouncer's), sampled in the background."""

    def __init__(self, url: str, role: str) -> None:
        self.url, self.role = url, role

    @contextmanager
    def most(self) -> Iterator[list[int]]:
        found = [0]
        done = threading.Event()

        def sample() -> None:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not done.wait(0.25):
                    row = conn.execute(SERVER_CONNECTIONS, [self.role]).fetchone()
                    found[0] = max(found[0], int(row[0]) if row else 0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield found
        finally:
            done.set()
            sampler.join(timeout=10)


def measure(
    url: str, hosts: int, standbys: int, workload: str, args: argparse.Namespace, counted: Counting, caps: CpuCaps
) -> Measured:
    """wrk's figures for one workload, the primary's server connections, and where the CPU went meanwhile."""
    tag = f"s{hosts}{standbys}{int(time.time())}"
    load = caps.joining("wrk", capped=False)
    connections = args.connections * hosts  # each host as loaded as one host alone: coalescing needs company
    wrk.run(url, workload, args.rows, tag + "w", connections, args.warmup, load)
    before, (busy_before, _) = caps.used(), deployment.machine_busy()
    with counted.most() as most:
        found = wrk.run(url, workload, args.rows, tag, connections, args.seconds, load)
    after, (busy_after, _) = caps.used(), deployment.machine_busy()
    cores = {role: sum(after[name] - before.get(name, 0.0) for name in after if name.split("-")[0] == role)
             / found.seconds for role in ROLES}  # fmt: skip
    cores["machine"] = (busy_after - busy_before) / found.seconds
    measured = Measured(hosts, standbys, workload, found.requests / found.seconds, found.p50_ms, found.p99_ms,
                        found.errors, most[0], cores)  # fmt: skip
    bench.progress(f"  {workload}: {measured.rps:,.0f} req/s, p99 {measured.p99_ms:.1f} ms, {measured.errors} errors, "
                   f"{measured.primary_connections} server connections on the primary; cores: "
                   + ", ".join(f"{role} {used:.2f}" for role, used in cores.items()))  # fmt: skip
    return measured


def kill_mid_run(url: str, replica: EmbeddedReplica, caps: CpuCaps, args: argparse.Namespace) -> wrk.WrkResult:
    """get-ones for 3 x --seconds, the standby killed with -9 a third of the way in; started again afterwards."""
    result: list[wrk.WrkResult] = []
    joining = caps.joining("wrk", capped=False)
    load = threading.Thread(target=lambda: result.append(wrk.run(url, "get", args.rows, "k", args.connections,
                                                                 3 * args.seconds, joining)))  # fmt: skip
    load.start()
    time.sleep(args.seconds)
    pid = replica.postmaster_pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    load.join()
    replica.start()
    caps.join("replica-1", replica.postmaster_pid() or -1)
    bench.progress(f"  {result[0].requests:,} get-ones, {result[0].errors} errors, standby {pid} killed")
    return result[0]


def stale_reads(url: str) -> Stale:
    """Write-then-read pairs on one user: PAIRS reading with the write's token, UNTOKENED_PAIRS without."""
    with httpx.Client(base_url=url, timeout=10) as client:
        made = client.post("/users", json={"email": f"stale.{int(time.time())}@example.com", "name": "Stale"})
        path = f"/users/{made.json()['id']}"
        time.sleep(1.0)
        missed = 0
        for pair in range(PAIRS):
            written = client.patch(path, json={"name": f"tokened {pair}"})
            read = client.get(path, headers={"Consistency-Token": written.headers["consistency-token"]})
            missed += read.json()["name"] != f"tokened {pair}"
        stale = 0
        for pair in range(UNTOKENED_PAIRS):
            client.patch(path, json={"name": f"untokened {pair}"})
            stale += client.get(path).json()["name"] != f"untokened {pair}"
    bench.progress(f"  stale: {missed} of {PAIRS} with the token, {stale} of {UNTOKENED_PAIRS} without")
    return Stale(missed, stale, PAIRS, UNTOKENED_PAIRS)


def write(
    started: datetime, args: argparse.Namespace, caps: CpuCaps, results: list[Measured], killed: wrk.WrkResult,
    stale: Stale,
) -> None:  # fmt: skip
    """bench/results/scale-<timestamp>.md and its chart, .png."""
    out = bench.RESULTS / f"scale-{started:%Y%m%dT%H%M%SZ}.md"
    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    lines = scale_report.lines(
        started, vars(args) | {"stale_delay": STALE_DELAY}, caps, results, killed, stale, out.with_suffix(".png").name
    )
    scale_report.chart(out.with_suffix(".png"), results)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    bench.progress(f"wrote {out.relative_to(bench.ROOT)}")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
