"""The benchmark harness: its baselines keep users-api's semantics, and its figures add up."""

import importlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.ops.embedded import find_binaries
from api.ops.processes import alive
from api.queries import SQL
from bench import dbceiling, procstat, report, wrk
from bench.profile import summarise
from tests.helpers import serve

pytestmark = pytest.mark.anyio


def load_baseline(name: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    module = importlib.import_module(f"bench.baselines.{name}")
    return importlib.reload(module)  # read this test's environment, not an earlier one's


async def drive(app: FastAPI) -> dict[str, httpx.Response]:
    """What the benchmark's workloads ask of a system, and the answers a 409 and a 404 would be."""
    async with serve(app) as client:
        created = await client.post("/users", json={"email": "base@example.com", "name": "O"})
        return {
            "created": created,
            "taken": await client.post("/users", json={"email": "BASE@example.com", "name": "P"}),
            "fetched": await client.get(f"/users/{created.json()['id']}"),
            "missing": await client.get("/users/999999"),
            "second": await client.post("/users", json={"email": "base2@example.com", "name": "Q"}),
            "page": await client.get("/users", params={"limit": 1}),
        }


def assert_same_contract(answers: dict[str, httpx.Response]) -> None:
    created, taken, fetched, missing, page = (answers[k] for k in ("created", "taken", "fetched", "missing", "page"))
    assert created.status_code == 201
    assert created.headers["location"] == f"/users/{created.json()['id']}"
    assert set(created.json()) == {"id", "email", "name", "created_at", "updated_at"}
    assert (taken.status_code, fetched.status_code, missing.status_code) == (409, 200, 404)
    assert fetched.json() == created.json()
    assert page.headers["link"] == f'</users?limit=1&after={created.json()["id"]}>; rel="next"'
    assert page.json() == [created.json()]


async def test_the_orm_baseline_serves_the_same_contract(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    orm = load_baseline("orm_app", monkeypatch, DATABASE_URL=database_url)
    try:
        answers = await drive(orm.app)
    finally:
        await orm.engine.dispose()

    assert_same_contract(answers)


async def test_raw_minimal_serves_the_same_contract(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = await drive(load_baseline("raw_minimal", monkeypatch, DATABASE_URL=database_url).app)

    assert_same_contract(answers)
    assert answers["fetched"].text == answers["created"].text, "PostgreSQL's JSON text, as users-api sends it"


async def test_the_http_ceiling_serves_the_bodies_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = {"id": 7, "email": "c@example.com", "name": "C", "created_at": "x", "updated_at": "y"}
    bodies = tmp_path / "bodies.json"
    bodies.write_text(json.dumps({"user": user, "page": [user] * 3}))
    ceiling = load_baseline("ceiling_app", monkeypatch, BENCH_BODIES=str(bodies))

    async with serve(ceiling.app) as client:
        one = await client.get("/users/7")
        page = await client.get("/users", params={"limit": 100})
        created = await client.post("/users", json={"email": "d@example.com", "name": "D"})

    assert one.json() == user
    assert page.json() == [user] * 3
    assert "link" in page.headers
    assert (created.status_code, created.headers["location"], created.json()) == (201, "/users/7", user)


@pytest.fixture
def logging_kept() -> Iterator[None]:
    """The test process's logging as it was, after code that sets up the service's own (icount's children)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    switches = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")
    saved = {name: getattr(logging, name) for name in switches}
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in saved.items():
        setattr(logging, name, value)


@pytest.mark.usefixtures("logging_kept")
async def test_the_instruction_counts_run_every_app_they_name(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import icount

    monkeypatch.setattr(icount, "WARMUP", 0)
    monkeypatch.setenv("DATABASE_URL", database_url)  # restored after the test
    jobs = [("users-api", "create")] + [job for job in icount.WHOLE_JOBS if job != ("users-api", "create")]
    jobs += [side for _, *sides in icount.LEVERS + icount.COSTS for side in sides]

    for app_name, request_name in jobs:  # each request's status is checked: 200 or 201
        await icount.child(app_name, request_name, 2, database_url)

    with psycopg.connect(database_url) as conn:
        created = conn.execute("SELECT count(*) FROM users").fetchone()
    assert created == (4,), "users-api and raw-minimal created two users each"


def test_wrk_results_are_read_with_every_error_counted() -> None:
    line = (
        'BENCH_RESULT {"requests":5000,"duration_us":2000000,"non2xx":3,"connect":1,"read":0,"write":0,'
        '"timeout":2,"p50_us":4000,"p99_us":9000,"max_us":12000}'
    )

    result = wrk.parse("Running 2s test\n" + line + "\n")

    assert (result.requests, result.seconds, result.p50_ms, result.p99_ms) == (5000, 2.0, 4.0, 9.0)
    assert (result.non2xx, result.socket_errors, result.errors) == (3, 3, 6)


def run(round_number: int, system: str, workload: str, rps: float, errors: int = 0, cpu: float = 100.0) -> report.Run:
    return report.Run(
        round=round_number,
        system=system,
        workload=workload,
        rps=rps,
        p50_ms=10.0,
        p99_ms=20.0,
        errors=errors,
        api_cpu_us=cpu,
        pg_cpu_us=50.0,
        api_rss_mib=60.0,
    )


def fake_runs() -> list[report.Run]:
    runs = []
    for workload in report.WORKLOADS:
        runs += [run(r, "users-api", workload, rps) for r, rps in ((1, 6000.0), (2, 7000.0), (3, 6500.0))]
        runs += [run(r, "orm", workload, 1000.0) for r in (1, 2, 3)]
        runs += [run(r, "raw-minimal", workload, 8000.0, cpu=80.0) for r in (1, 2, 3)]
        runs += [run(r, "users-api-2w", workload, 7800.0) for r in (1, 2, 3)]
        runs += [run(r, "users-api-unobserved", workload, 6700.0, cpu=95.0) for r in (1, 2, 3)]
        runs += [run(r, "http-ceiling", workload, 10000.0) for r in (1, 2, 3)]
    runs.append(run(4, "users-api", "get", 1.0, errors=5))  # invalid: must not count
    return runs


def test_ratios_use_medians_of_valid_runs_only() -> None:
    found = {what: (value, met) for what, value, _, met in report.ratios(fake_runs())}

    assert found["users-api / ORM, get"] == (6.5, True)
    assert found["users-api / ORM, list_start"] == (6.5, False)
    assert found["users-api / HTTP ceiling, get"] == (0.65, True)
    assert found["users-api p99 / p50, get"] == (2.0, True)
    assert found["users-api API CPU / raw-minimal's, get"] == (1.25, False)
    assert found["users-api API CPU / raw-minimal's, mix"] == (1.25, None), "no target on the mix"
    assert found["users-api WORKERS=2 / WORKERS=1 req/s, get"] == (1.2, None)
    assert found["users-api req/s / users-api-unobserved's, get"] == (6500 / 6700, True)
    assert found["users-api API CPU / users-api-unobserved's, get"] == (100 / 95, None)


def write_report(path: Path) -> str:
    markdown, chart = report.write(
        path,
        fake_runs(),
        config={
            "quick": True,
            "rounds": 3,
            "warmup": 3,
            "seconds": 10,
            "connections": 64,
            "workers": 1,
            "db_connections": 10,
            "rows": 1000,
        },
        seed_rate=123456.0,
        commands={"load": "wrk ..."},
        pg_settings=[("fsync", "on", None), ("shared_buffers", "16384", "8kB")],
        started=datetime(2026, 1, 1),
        embedded=True,
    )
    assert chart.stat().st_size > 0
    return markdown.read_text()


def test_the_results_file_and_chart_are_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wrk").write_text(FAKE_WRK)
    (tmp_path / "wrk").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    text = write_report(tmp_path / "run.md")

    assert "| users-api / ORM, get | 6.50 | >= 5x | yes |" in text
    assert "round 4 get users-api: 5 non-2xx or socket errors" in text
    assert "| shared_buffers | 16384 8kB |" in text
    assert "wrk: wrk 4.2.0 [epoll] Copyright (C) 2012 Will Glozer" in text


def test_the_results_file_says_when_wrk_is_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    assert "; wrk: not installed" in write_report(tmp_path / "run.md")


def test_cpu_of_a_process_tree_is_read_from_proc() -> None:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        before = procstat.cpu_seconds(os.getpid())
        time.sleep(0.5)
        after = procstat.cpu_seconds(os.getpid())
        assert child.pid in procstat.descendants(os.getpid())
    finally:
        child.kill()
        child.wait()

    assert after - before >= 0.1, "the busy child's CPU counts for its parent's tree"
    assert procstat.peak_rss_mib(os.getpid()) > 10


@pytest.mark.parametrize("workload", report.WORKLOADS)
async def test_the_asyncpg_ceiling_runs_the_query_files(
    database_url: str, postgresql: psycopg.Connection, workload: str
) -> None:
    postgresql.execute(
        "INSERT INTO users (email, name) SELECT 'u' || n || '@example.com', 'U' FROM generate_series(1, 1200) n"
    )
    postgresql.commit()

    measured = await dbceiling.drive_asyncpg(database_url, workload, 1200, "t", 2, warmup=0.1, seconds=0.3)

    assert measured.requests > 10
    assert 0 < measured.p50_ms <= measured.p99_ms


def test_pgbench_runs_the_same_statements(postgresql: psycopg.Connection, tmp_path: Path) -> None:
    postgresql.execute(
        "INSERT INTO users (email, name) SELECT 'p' || n || '@example.com', 'P' FROM generate_series(1, 1200) n"
    )
    postgresql.commit()
    info = postgresql.info
    server = dbceiling.Server(info.host, info.port, info.user, info.password or None, info.dbname)
    pgbench = dbceiling.find_pgbench(find_binaries())
    assert pgbench is not None

    scripts = dbceiling.pgbench_scripts(tmp_path)
    command = dbceiling.pgbench_command(pgbench, scripts, "mix", 1200, 2, 1, server)
    measured = dbceiling.run_pgbench(command, server)

    assert "-M" in command and "prepared" in command
    assert scripts["get"].read_text().endswith(SQL.get_user.replace("$1", ":id"))
    assert measured.requests > 10
    created = postgresql.execute("SELECT count(*) FROM users WHERE email LIKE 'pgbench.%'").fetchone()
    assert created is not None and created[0] > 0, "the mix creates users too"


def test_a_profile_is_folded_into_own_and_total_time(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text("main;serve;handle 6\nmain;serve;encode 3\nmain;idle 1\n")

    summary = summarise(raw)

    assert summary.startswith("10 samples")
    assert " 60.0%  handle" in summary
    assert " 90.0%  serve" in summary


FAKE_APT_GET = """#!{python}
# apt-get as on a new machine: `install` fails until `update` has fetched the package lists.
import sys
from pathlib import Path

here = Path(sys.argv[0]).parent
with (here / "apt-get.log").open("a") as log:
    print(*sys.argv[1:], file=log)
if sys.argv[1] == "update":
    (here / "updated").touch()
elif not ((here / "updated").exists() and {installs}):
    sys.exit(100)
else:
    wrk = here / "wrk"
    wrk.write_text({wrk!r})
    wrk.chmod(0o755)
"""
FAKE_WRK = "#!/bin/sh\necho 'wrk 4.2.0 [epoll] Copyright (C) 2012 Will Glozer'\n"


def fake_apt_get(tmp_path: Path, *, installs: bool) -> Path:
    """An apt-get of the test's own, alone on PATH, so that nothing is installed on the machine."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    apt_get = bin_dir / "apt-get"
    apt_get.write_text(FAKE_APT_GET.format(python=sys.executable, installs=installs, wrk=FAKE_WRK))
    apt_get.chmod(0o755)
    return apt_get


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


@pytest.mark.usefixtures("as_root")
def test_as_root_the_harness_installs_wrk_with_apt_get(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    apt_get = fake_apt_get(tmp_path, installs=True)
    monkeypatch.setenv("PATH", str(apt_get.parent))

    found = wrk.ensure_wrk()

    assert found == str(apt_get.parent / "wrk")
    log = (apt_get.parent / "apt-get.log").read_text().splitlines()
    assert log == ["install -y -q wrk", "update -q", "install -y -q wrk"], "a retry after fetching the lists"


@pytest.mark.usefixtures("as_root")
def test_when_apt_get_cannot_install_wrk_the_harness_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import run

    monkeypatch.setenv("PATH", str(fake_apt_get(tmp_path, installs=False).parent))

    assert run.main(["--quick"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("bench: wrk") and "apt-get install wrk" in last


def test_without_wrk_or_root_the_harness_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import run

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("PATH", str(fake_apt_get(tmp_path, installs=True).parent))

    assert run.main(["--quick"]) == 2
    message = capsys.readouterr().err
    assert "apt-get install wrk" in message and message.count("\n") == 1
    assert not (tmp_path / "bin" / "apt-get.log").exists(), "only root installs"


def test_the_bench_database_is_made_on_a_fresh_embedded_server(
    scratch_pgdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import run

    monkeypatch.delenv("DATABASE_URL", raising=False)
    with run.database(scratch_pgdata) as db, psycopg.connect(db.url) as conn:
        found = conn.execute("SELECT current_database()").fetchone()
        postmaster_running = db.postmaster_pid is not None and alive(db.postmaster_pid)

    assert found == (run.BENCH_DATABASE,)
    assert postmaster_running, "the server's CPU is read from its postmaster"
