"""Running wrk with the workload script and reading its one-line JSON result."""

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import tools

SCRIPT = Path(__file__).parent / "lua" / "workload.lua"
INSTALL_HINT = tools.install_hint("wrk")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


def find_wrk() -> str | None:
    return shutil.which("wrk")


def ensure_wrk() -> str | None:
    """wrk's path, installed with apt-get first when it is missing and this process is root; None if it cannot be."""
    return tools.ensure("wrk", package="wrk")


def version() -> str:
    """What `wrk --version` says of itself, or that it is not installed."""
    found = find_wrk()
    if found is None:
        return "not installed"
    done = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    return (done.stdout or done.stderr).splitlines()[0].strip()


def command(url: str, connections: int, seconds: float) -> list[str]:
    return [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{round(seconds)}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        url,
    ]


def run(
    url: str,
    workload: str,
    rows: int,
    tag: str,
    connections: int,
    seconds: float,
    preexec_fn: Callable[[], None] | None = None,
) -> WrkResult:
    """wrk's figures for `workload`; `preexec_fn` runs in its process first (joins a cgroup, say)."""
    env = os.environ | {"BENCH_WORKLOAD": workload, "BENCH_ROWS": str(rows), "BENCH_TAG": tag}
    done = subprocess.run(  # noqa: S603 - wrk with our own arguments
        command(url, connections, seconds),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        preexec_fn=preexec_fn,
    )
    return parse(done.stdout)


def parse(output: str) -> WrkResult:
    """The figures from the BENCH_RESULT line that bench/lua/workload.lua prints when wrk is done."""
    line = next(line for line in output.splitlines() if line.startswith("BENCH_RESULT "))
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        non2xx=raw["non2xx"],
        socket_errors=socket_errors,
    )
