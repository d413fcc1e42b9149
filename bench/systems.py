"""The HTTP systems under test, each a uvicorn process on its own port, started and stopped here."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
UVICORN = [
    sys.executable,
    "-m",
    "uvicorn",
    "--host",
    "127.0.0.1",
    "--no-access-log",
    "--log-level",
    "warning",
]


@dataclass
class System:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    cwd: Path = ROOT  # another checkout (a `git worktree` of an older commit) runs its own code
    probe: str = "/users/1"  # answered below 500 once the system serves; users-api's /ready, 200 once ready
    preexec_fn: Callable[[], None] | None = field(default=None, repr=False)  # run in its process first (a cgroup)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self.process.pid

    def start(self, log_dir: Path) -> None:
        log = (log_dir / f"{self.name}.log").open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own commands
            self.command,
            cwd=self.cwd,
            env=os.environ | self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=self.preexec_fn,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {log.name}")
            try:
                if httpx.get(f"{self.url}{self.probe}", timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer within 60 s; see {log.name}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def users_api(
    database_url: str,
    port: int,
    workers: int,
    name: str = "users-api",
    *,
    observed: bool = True,
    coalesced: bool = True,
    gc_tuned: bool = True,
    issuer: str | None = None,
    audience: str | None = None,
) -> System:
    """users-api as its users run it: `users-api serve` (uvicorn, uvloop, httptools), its defaults kept.

    Observed, as by default: a log line per request (LOG_LEVEL=info) and Prometheus metrics. Not observed:
    METRICS=false and LOG_LEVEL=warning, to measure what seeing inside costs. Not `coalesced`: a statement per
    get-one, lookup or create (COALESCE_READS=false, COALESCE_CREATES=false), to measure what coalescing buys. Not
    `gc_tuned`: Python's own garbage collection (GC_YOUNG_THRESHOLD=0), to measure what collecting rarely buys.
    With `issuer`, every /users request needs a bearer token from it (AUTH_ISSUER): the load sends one
    (BENCH_TOKEN).
    """
    env = {"DATABASE_URL": database_url, "PORT": str(port), "WORKERS": str(workers)}
    if not observed:
        env |= {"METRICS": "false", "LOG_LEVEL": "warning"}
    if not coalesced:
        env |= {"COALESCE_READS": "false", "COALESCE_CREATES": "false"}
    if not gc_tuned:
        env |= {"GC_YOUNG_THRESHOLD": "0"}
    if issuer is not None and audience is not None:
        env |= {"AUTH_ISSUER": issuer, "AUTH_AUDIENCE": audience}
    # /ready: 503 until the pool (and with an issuer, its keys) can serve, where /users/1 could be a 401.
    return System(name, [sys.executable, "-m", "api", "serve"], env, port, probe="/ready")


def raw_minimal(database_url: str, port: int, workers: int) -> System:
    command = [*UVICORN, "--port", str(port), "--workers", str(workers), "bench.baselines.raw_minimal:app"]
    return System("raw-minimal", command, {"DATABASE_URL": database_url}, port)


def orm(database_url: str, port: int, workers: int) -> System:
    command = [*UVICORN, "--port", str(port), "--workers", str(workers), "bench.baselines.orm_app:app"]
    return System("orm", command, {"DATABASE_URL": database_url}, port)


def http_ceiling(bodies: Path, port: int, workers: int) -> System:
    command = [*UVICORN, "--port", str(port), "--workers", str(workers), "bench.baselines.ceiling_app:app"]
    return System("http-ceiling", command, {"BENCH_BODIES": str(bodies)}, port)
