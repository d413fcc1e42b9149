"""The database ceiling, no HTTP: the very files of sql/ driven by asyncpg, and by pgbench."""

import asyncio
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from statistics import quantiles

import asyncpg

from api.queries import SQL
from bench.baselines.raw_minimal import no_reset

PAGE = 100
# What the database ceilings measure: the workloads of many connections over the files every system runs.
WORKLOADS = ("create", "get", "list_start", "list_deep", "mix")


@dataclass(frozen=True)
class Measured:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float


def _next_call(workload: str, rows: int, tag: str, counter: list[int]) -> tuple[str, tuple[object, ...]]:
    """The query file and parameters of the next operation, as the HTTP workloads would cause."""
    if workload == "mix":
        workload = "create" if random.random() < 0.2 else "get"  # noqa: S311 - load shape, not security
    if workload == "create":
        counter[0] += 1
        return SQL.create_user, (f"d{tag}.{counter[0]}@example.com", "Bench User")
    if workload == "get":
        return SQL.get_user, (random.randint(1, rows),)  # noqa: S311
    after = random.randint(0, 1000) if workload == "list_start" else random.randint(rows - 1100, rows - 100)  # noqa: S311
    return SQL.list_users, (after, PAGE)


async def drive_asyncpg(
    url: str, workload: str, rows: int, tag: str, connections: int, warmup: float, seconds: float
) -> Measured:
    """`connections` tasks, each looping over pooled queries; latencies kept for the measured window."""
    pool = await asyncpg.create_pool(
        url, min_size=connections, max_size=connections, server_settings={"TimeZone": "UTC"}, reset=no_reset
    )
    latencies: list[float] = []
    counter = [0]
    start_at = time.perf_counter() + warmup
    stop_at = start_at + seconds

    async def worker() -> None:
        while (now := time.perf_counter()) < stop_at:
            query, args = _next_call(workload, rows, tag, counter)
            await pool.fetch(query, *args)
            if now >= start_at:
                latencies.append(time.perf_counter() - now)

    try:
        await asyncio.gather(*(worker() for _ in range(connections)))
    finally:
        await pool.close()
    cuts = quantiles(latencies, n=100)
    return Measured(len(latencies), seconds, cuts[49] * 1000, cuts[98] * 1000)


# pgbench takes no $1: for each workload, the \set lines that draw the values and what stands for
# each parameter of the query file, in order. The statements themselves are the files of sql/.
PGBENCH_WORKLOADS = {
    "get": ("get_user", ["\\set id random(1, :rows)"], [":id"]),
    "list_start": ("list_users", ["\\set after random(0, 1000)"], [":after", str(PAGE)]),
    "list_deep": ("list_users", ["\\set after random(:rows - 1100, :rows - 100)"], [":after", str(PAGE)]),
    "create": (
        "create_user",
        ["\\set n random(1, 1000000000000)"],  # a collision would only be a no-op insert
        ["'pgbench.' || :n || '@example.com'", "'Bench User'"],
    ),
}
PGBENCH_MIX = {"get": 4, "create": 1}  # 80% reads, 20% creates, as the HTTP mix


def _stand_in(values: list[str], parameter: re.Match[str]) -> str:
    return values[int(parameter.group(1)) - 1]


def pgbench_scripts(directory: Path) -> dict[str, Path]:
    """One pgbench script per workload, written from the query files of sql/."""
    scripts = {}
    for workload, (query, sets, values) in PGBENCH_WORKLOADS.items():
        statement = re.sub(r"\$(\d+)", partial(_stand_in, values), getattr(SQL, query))
        path = directory / f"{workload}.pgbench"
        path.write_text("\n".join([*sets, statement]), encoding="utf-8")
        scripts[workload] = path
    return scripts


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    password: str | None
    database: str


def pgbench_command(
    pgbench: Path, scripts: dict[str, Path], workload: str, rows: int, connections: int, seconds: float, server: Server
) -> list[str]:
    command = [str(pgbench), "-n", "-M", "prepared", "-c", str(connections), "-j", "1", "-T", str(round(seconds))]
    command += ["-D", f"rows={rows}", "-h", server.host, "-p", str(server.port), "-U", server.user]
    weights = PGBENCH_MIX if workload == "mix" else {workload: 1}
    for name, weight in weights.items():
        command += ["-f", f"{scripts[name]}@{weight}"]
    return [*command, server.database]


def run_pgbench(command: list[str], server: Server) -> Measured:
    """Run pgbench with a per-transaction log, from which the latency percentiles come."""
    env = dict(os.environ) | {"PGOPTIONS": "-c TimeZone=UTC"}  # as the service's pool sets it
    env |= {"PGPASSWORD": server.password} if server.password else {}
    with tempfile.TemporaryDirectory() as logs:
        logged = [*command[:-1], "-l", f"--log-prefix={logs}/tx", command[-1]]
        subprocess.run(logged, capture_output=True, text=True, check=True, env=env)  # noqa: S603 - pgbench, our arguments
        latencies_us = [int(line.split()[2]) for log in Path(logs).iterdir() for line in log.read_text().splitlines()]
    seconds = float(command[command.index("-T") + 1])
    cuts = quantiles(latencies_us, n=100)
    return Measured(len(latencies_us), seconds, cuts[49] / 1000, cuts[98] / 1000)


def find_pgbench(bin_dir: Path | None) -> Path | None:
    if bin_dir is not None and (bin_dir / "pgbench").is_file():
        return bin_dir / "pgbench"
    found = shutil.which("pgbench")
    return Path(found) if found else None
