"""Running wrk with the workload script and reading its one-line JSON result."""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).parent / "lua" / "workload.lua"
INSTALL_HINT = (
    "wrk, the load generator, is not installed: `sudo apt-get install wrk` (Debian, Ubuntu), "
    "`brew install wrk` (macOS), or build it from its sources"
)


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


def run(url: str, workload: str, rows: int, tag: str, connections: int, seconds: float) -> WrkResult:
    env = os.environ | {"BENCH_WORKLOAD": workload, "BENCH_ROWS": str(rows), "BENCH_TAG": tag}
    done = subprocess.run(  # noqa: S603 - wrk with our own arguments
        command(url, connections, seconds), capture_output=True, text=True, env=env, check=True
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
