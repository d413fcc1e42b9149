"""What `make bench-scale` measured, as a results file and a chart: each topology's figures, and its targets."""

import os
import platform
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

from bench import report, wrk
from bench.deployment import CpuCaps

POOL_SIZE = 20  # PgBouncer's server connections to the primary, however many API hosts
READS = ("get", "list_start")
READ_TARGETS = {(2, 1): 1.8, (3, 2): 2.5}  # reads/s against 1 host and no standby
NAMES = {"get": "get one", "list_start": "list (100)", "create": "create"}
WORKLOADS = list(NAMES)
# Where the CPU goes, by the cgroups' names before their number: the API hosts, the primary with PgBouncer, the
# standbys, HAProxy, wrk.
ROLES = ("api", "primary", "replica", "haproxy", "wrk")


@dataclass(frozen=True)
class Measured:
    hosts: int
    standbys: int
    workload: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    primary_connections: int  # the most server connections seen on the primary during the run
    cores: dict[str, float]  # CPU used during the run, in cores, by ROLES and "machine" (all of it)


@dataclass(frozen=True)
class Stale:
    with_token: int  # of PAIRS reads that sent their write's token, those that missed it
    without_token: int  # of UNTOKENED_PAIRS reads without it, those that missed it
    pairs: int
    untokened_pairs: int


def _of(results: list[Measured], hosts: int, standbys: int, workload: str) -> Measured:
    return next(m for m in results if (m.hosts, m.standbys, m.workload) == (hosts, standbys, workload))


def medians(rounds: list[Measured]) -> tuple[list[Measured], dict[tuple[int, int, str], str]]:
    """One Measured per topology and workload: the rounds' medians (errors summed, connections at their most),
    and the spread of req/s over the rounds, as "min-max"."""
    keys = sorted(
        {(m.hosts, m.standbys, m.workload) for m in rounds}, key=lambda k: (k[0], k[1], WORKLOADS.index(k[2]))
    )
    merged, spread = [], {}
    for hosts, standbys, workload in keys:
        found = [m for m in rounds if (m.hosts, m.standbys, m.workload) == (hosts, standbys, workload)]
        merged.append(Measured(
            hosts, standbys, workload, median(m.rps for m in found), median(m.p50_ms for m in found),
            median(m.p99_ms for m in found), sum(m.errors for m in found), max(m.primary_connections for m in found),
            {role: median(m.cores[role] for m in found) for role in found[0].cores},
        ))  # fmt: skip
        spread[hosts, standbys, workload] = f"{min(m.rps for m in found):,.0f}-{max(m.rps for m in found):,.0f}"
    return merged, spread


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def lines(
    started: datetime, args: dict[str, Any], caps: CpuCaps, results: list[Measured], killed: wrk.WrkResult,
    stale: Stale, chart_name: str,
) -> list[str]:  # fmt: skip
    """The results file's lines: how it was produced, the figures (medians of the rounds), the targets."""
    rounds = len(results) // len({(m.hosts, m.standbys, m.workload) for m in results})
    results, spread = medians(results)
    topologies = sorted({(m.hosts, m.standbys) for m in results})
    out = [
        f"# users-api past one machine, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Produced by `make bench-scale` (`python -m bench.scale`) at {report.commit()}, as root on this machine: "
        f"each host a CPU cgroup (v{caps.version}) capped at {caps.share:g} of a core: every API host "
        "(`users-api serve`, one worker), the primary with PgBouncer, each standby. HAProxy (`balance leastconn`, "
        "checks on `GET /ready`) in front of the API hosts; PgBouncer in transaction mode in front of the primary "
        f"(pool of {POOL_SIZE}; the hosts run with `STATEMENT_CACHE_SIZE=0`, which PgBouncer 1.18 needs); reads "
        "on the standbys (`DATABASE_REPLICA_URLS`, streaming from the embedded primary). wrk (one thread, "
        f"{args['connections']} connections per API host, so that each host is as loaded as one alone) and HAProxy "
        f"are not capped. {args['rows']:,} users; each workload {args['warmup']:g} s of warm-up, then "
        f"{args['seconds']:g} s measured; {rounds} round(s), the topologies in rotated order, medians shown.",
        "",
        f"- Python {platform.python_version()}; wrk: {wrk.version()}; {os_cpus()}",
        "",
        "| API hosts | standbys | workload | req/s | min-max | p50 ms | p99 ms | errors | primary's connections |",
        "|--:|--:|---|--:|--:|--:|--:|--:|--:|",
        *(f"| {m.hosts} | {m.standbys} | {NAMES[m.workload]} | {m.rps:,.0f} "
          f"| {spread[m.hosts, m.standbys, m.workload]} | {m.p50_ms:.1f} | {m.p99_ms:.1f} | {m.errors} "
          f"| {m.primary_connections} |" for m in results),
        "",
        f"![req/s by topology]({chart_name})",
        "",
        "Where the CPU went during each run, in cores (CPU seconds per second): the capped hosts by role (each "
        f"API host and each standby at most {caps.share:g}; the primary with PgBouncer at most {caps.share:g}), "
        f"the uncapped HAProxy and wrk, and the whole machine (of {os.cpu_count()}).",
        "",
        "| API hosts | standbys | workload | API hosts | primary + PgBouncer | standbys | HAProxy | wrk | machine |",
        "|--:|--:|---|--:|--:|--:|--:|--:|--:|",
        *(f"| {m.hosts} | {m.standbys} | {NAMES[m.workload]} | "
          + " | ".join(f"{m.cores[role]:.2f}" for role in (*ROLES, "machine")) + " |" for m in results),
        "",
        "## Targets",
        "",
        "| target | measured | result |",
        "|---|--:|---|",
    ]  # fmt: skip
    missed = []
    for (hosts, standbys), target in READ_TARGETS.items():
        if (hosts, standbys) not in topologies:
            continue
        for workload in READS:
            ratio = _of(results, hosts, standbys, workload).rps / _of(results, 1, 0, workload).rps
            out.append(f"| {NAMES[workload]} at {hosts} hosts + {standbys} standby(s) ≥ {target:g}x 1 host "
                       f"| {ratio:.2f}x | {_met(ratio >= target)} |")  # fmt: skip
            if ratio < target:
                missed.append(_why(results, caps.share, hosts, standbys, workload))
    most = max(m.primary_connections for m in results)
    errors = sum(m.errors for m in results)
    out += [
        f"| the primary's server connections ≤ PgBouncer's pool ({POOL_SIZE}) however many hosts | at most {most} "
        f"| {_met(most <= POOL_SIZE)} |",
        f"| 0 stale reads among {stale.pairs:,} write-then-read pairs with the token | {stale.with_token} "
        f"| {_met(stale.with_token == 0)} |",
        f"| reads without the token are stale (the standby, {args['stale_delay']} behind, answers) "
        f"| {stale.without_token} of {stale.untokened_pairs} | {_met(stale.without_token > 0)} |",
        f"| 0 errors while a standby is killed with -9 mid-run (2 hosts + 1 standby, get one) | {killed.errors} of "
        f"{killed.requests:,} | {_met(killed.errors == 0)} |",
        f"| 0 errors in every run above | {errors} | {_met(errors == 0)} |",
        "",
    ]
    if missed:
        out += ["What held each missed one back, from the CPU table: the hosts at their cap, the baseline's too.", ""]
        out += [f"- {line}" for line in missed] + [""]
    return out


def _why(results: list[Measured], share: float, hosts: int, standbys: int, workload: str) -> str:
    """The roles at (nearly) their caps in a topology's run and in the baseline's: what bounded each."""

    def capped(m: Measured) -> str:
        counts = {"api": m.hosts, "replica": m.standbys, "primary": 1}
        full = [f"{role} {m.cores[role]:.2f} of {share * count:.2f}" for role, count in counts.items()
                if count and m.cores[role] >= 0.9 * share * count]  # fmt: skip
        return ", ".join(full) or f"no host at its cap (machine {m.cores['machine']:.2f} cores busy)"

    measured = _of(results, hosts, standbys, workload)
    return (f"{NAMES[workload]} at {hosts} hosts + {standbys} standby(s): {capped(measured)}; "
            f"at 1 host: {capped(_of(results, 1, 0, workload))}")  # fmt: skip


def os_cpus() -> str:
    return f"{os.cpu_count()} cores shared by everything above"


def chart(path: Path, rounds: list[Measured]) -> None:
    """Grouped bars: req/s of each workload (the rounds' median), a bar per topology."""
    import matplotlib

    results, _ = medians(rounds)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    topologies = sorted({(m.hosts, m.standbys) for m in results})
    workloads = list(dict.fromkeys(m.workload for m in results))
    figure, axis = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(topologies)
    for index, (hosts, standbys) in enumerate(topologies):
        heights = [_of(results, hosts, standbys, workload).rps for workload in workloads]
        positions = [w + index * width for w in range(len(workloads))]
        axis.bar(positions, heights, width, label=f"{hosts} API host(s), {standbys} standby(s)")
    axis.set_xticks([w + 0.4 - width / 2 for w in range(len(workloads))], [NAMES[w] for w in workloads])
    axis.set_ylabel("requests per second")
    axis.set_title("users-api behind HAProxy, PgBouncer in front of the primary, each host CPU-capped")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
