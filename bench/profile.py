"""`make bench-profile`: where users-api spends its CPU under load, sampled by py-spy.

Seeds the bench database, starts users-api, drives one workload with wrk and records the API
process with py-spy meanwhile. Writes bench/results/profile-<workload>.txt: the functions holding
the most samples, by own time and by time including callees.
"""

import argparse
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from api.ops.cluster import find_available_port
from bench import report, systems, wrk
from bench import run as bench
from bench.report import WORKLOADS


def summarise(raw: Path, top: int = 30) -> str:
    """py-spy's raw (collapsed stack) output, folded into own-time and total-time tables."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    rows = [f"{samples} samples", "", "own time:"]
    rows += [f"{100 * n / samples:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    rows += ["", "total time (with callees):"]
    rows += [f"{100 * n / samples:5.1f}%  {frame}" for frame, n in total.most_common(top)]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-profile", description=__doc__)
    parser.add_argument("--workload", default="get", choices=WORKLOADS)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    if wrk.ensure_wrk() is None:
        print(f"bench: {wrk.INSTALL_HINT}", file=sys.stderr)
        return 2
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    config = bench.Config(
        rounds=1,
        warmup=2,
        seconds=args.seconds,
        rows=args.rows,
        connections=64,
        db_connections=10,
        workers=1,
        quick=False,
    )
    with tempfile.TemporaryDirectory() as scratch, bench.database(bench.ROOT / ".pgdata-bench") as db:
        bench.populate(db, args.rows)
        api = systems.users_api(db.url, find_available_port(), workers=1)
        api.start(Path(scratch))
        raw = Path(scratch) / "profile.txt"
        try:
            wrk.run(api.url, args.workload, args.rows, secrets.token_hex(4), 64, 2)  # warm-up
            recorder = threading.Thread(
                target=subprocess.run,
                args=(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(api.pid),
                        "--duration",
                        str(args.seconds),
                        "--rate",
                        "250",
                        "--format",
                        "raw",
                        "--output",
                        str(raw),
                        "--nonblocking",
                    ],
                ),
                kwargs={"check": True, "capture_output": True},
            )
            recorder.start()
            result = wrk.run(api.url, args.workload, args.rows, secrets.token_hex(4), 64, args.seconds)
            recorder.join()
        finally:
            api.stop()
        summary = summarise(raw)
    out = bench.RESULTS / f"profile-{args.workload}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"py-spy profile of users-api under `{args.workload}` ({config.connections} connections, "
        f"{args.seconds} s, {result.requests / result.seconds:,.0f} req/s, {result.errors} errors), "
        f"made by `make bench-profile` (python -m bench.profile --workload {args.workload}) at {report.commit()}\n\n"
    )
    out.write_text(header + summary + "\n", encoding="utf-8")
    bench.progress(f"wrote {out.relative_to(bench.ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
