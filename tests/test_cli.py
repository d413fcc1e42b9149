"""`users-api serve` as `make run` runs it: embedded server, migrations, HTTP, clean stop, kept data."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from test_embedded import alive, server_pid

from api import cli, embedded
from api import migrations as migrations_module

from support import free_port, make_settings


class Service:
    def __init__(self, scratch_pgdata: Path) -> None:
        self.port = free_port()
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "OWNER_DATABASE_URL")}
        env |= {
            "EMBEDDED_PGDATA": str(scratch_pgdata),
            "EMBEDDED_PGPORT": str(free_port()),
            "PORT": str(self.port),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api", "serve"],
            cwd=scratch_pgdata.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.client.get("/ready").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop(signal.SIGKILL)
        raise AssertionError(f"users-api serve did not become ready:\n{self.output}")

    def stop(self, signum: int) -> int:
        self.client.close()
        self.process.send_signal(signum)
        self.output, _ = self.process.communicate(timeout=60)
        return self.process.returncode


def api_roles(pgdata: Path) -> set[str]:
    """The roles users-api's pooled connections log in as, read as the embedded owner role."""
    port = int((pgdata / "pgpass").read_text().split(":")[1])
    password = (pgdata / "owner-password").read_text().strip()
    url = f"postgresql://{embedded.OWNER_ROLE}:{password}@127.0.0.1:{port}/{embedded.DATABASE}"
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT usename FROM pg_stat_activity WHERE application_name = 'users-api'").fetchall()
    return {row[0] for row in rows}


def test_serve_runs_on_the_embedded_server_stops_cleanly_and_keeps_users(scratch_pgdata: Path) -> None:
    first = Service(scratch_pgdata)
    created = first.client.post("/users", json={"email": "kept@example.com", "name": "Kept"})
    pid = server_pid(scratch_pgdata)
    connected_as = api_roles(scratch_pgdata)
    assert first.stop(signal.SIGINT) in (0, 130)  # Ctrl-C

    assert created.status_code == 201
    assert connected_as == {embedded.APP_ROLE}, "the API connects as the app role, not the owner or superuser"
    assert pid is not None and not alive(pid), "Ctrl-C stops the embedded server too"
    assert str(scratch_pgdata) in first.output and "psql" in first.output
    assert "migrations applied: 0001_create_users, 0002_grant_app_role" in first.output
    assert f"-U {embedded.OWNER_ROLE} " in first.output, "the psql command logged opens the database as the owner"

    second = Service(scratch_pgdata)
    fetched = second.client.get(f"/users/{created.json()['id']}")
    pid = server_pid(scratch_pgdata)
    second.stop(signal.SIGTERM)

    assert fetched.json() == created.json(), "users survive a restart"
    assert "migrations applied: none pending" in second.output
    assert pid is not None and not alive(pid), "SIGTERM stops the embedded server too"


def test_without_database_url_or_the_wheel_serve_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(embedded, "WHEEL_PACKAGE", "no_such_wheel_installed")

    assert cli.main(["serve"]) == 2

    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert "pip install 'users-api[embedded]'" in message and "DATABASE_URL" in message


def test_a_bad_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PORT", "not-a-port")

    assert cli.main(["migrate"]) == 2

    message = capsys.readouterr().err
    assert message.startswith("users-api: invalid configuration: PORT:")
    assert message.count("\n") == 1


def test_with_database_url_no_embedded_server_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "WHEEL_PACKAGE", "no_such_wheel_installed")  # would fail if asked for
    app = "postgresql://app:pw@db.example:5432/app"
    owner = "postgresql://owner:pw@db.example:5432/app"

    with cli.databases(make_settings(app, owner_database_url=owner)) as found:
        assert found == cli.Databases(app_url=app, owner_url=owner)
    with cli.databases(make_settings(app)) as found:
        assert found == cli.Databases(app_url=app, owner_url=app), "one role for both when no owner is given"


def test_an_unreachable_database_url_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    free_tcp_port: int,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://nobody:nothing@127.0.0.1:{free_tcp_port}/none")

    assert cli.main(["migrate"]) == 1

    message = capsys.readouterr().err
    assert message.startswith("users-api: migrations failed:") and "refused" in message
    assert message.count("\n") == 1


def test_migrating_as_the_app_role_says_which_role_migrations_need(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A deploy that gave only the app role's URL, to a database the migrations have not reached yet.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("OWNER_DATABASE_URL", raising=False)
    monkeypatch.setattr(migrations_module, "resource_dir", lambda name: tmp_path / name)
    monkeypatch.setattr(migrations_module, "LOCK_TIMEOUT_SECONDS", 1)  # yoyo reads a refused lock as a busy one
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0003_more.sql").write_text("CREATE TABLE more_users (id bigint);\n")

    assert cli.main(["migrate"]) == 1

    message = capsys.readouterr().err
    assert "permission denied" in message and "OWNER_DATABASE_URL" in message
    assert message.count("\n") == 1


def test_serve_can_leave_migrations_to_a_separate_step(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The API's processes then need only the app role, which may not even read yoyo's tables.
    served: list[str] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MIGRATE_ON_SERVE", "false")
    monkeypatch.setattr("uvicorn.run", lambda app, **_: served.append(app))
    monkeypatch.setattr(migrations_module, "apply", lambda *_: pytest.fail("serve migrated"))

    assert cli.main(["serve"]) == 0
    assert served == ["api.app:create_app"]
