"""`users-api serve` as `make run` runs it: embedded server, migrations, HTTP, clean stop, kept data."""

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from api.ops import cli, embedded, migrator
from api.ops.cluster import APP_ROLE, OWNER_ROLE, Databases, find_available_port, postmaster_pid
from api.ops.processes import alive
from api.ops.settings import ServiceSettings
from bench.identity import identity_provider
from tests.helpers import Service, owner_url


def api_roles(data_dir: Path) -> set[str]:
    """The roles users-api's pooled connections log in as, read as the embedded owner role."""
    with psycopg.connect(owner_url(data_dir)) as conn:
        rows = conn.execute("SELECT usename FROM pg_stat_activity WHERE application_name = 'users-api'").fetchall()
    return {row[0] for row in rows}


@pytest.fixture(params=["open", "private"])
def pgdata(request: pytest.FixtureRequest, scratch_pgdata: Path) -> Iterator[tuple[Path, Path]]:
    """EMBEDDED_PGDATA, and where the data will be: the same folder, or as root, for a folder in a
    checkout that the server's user cannot enter, a folder of users-api's own (removed afterwards)."""
    if request.param == "open":
        yield scratch_pgdata, scratch_pgdata
        return
    if os.geteuid() != 0:
        pytest.skip("only root's server runs as another user, who may be kept out of a private folder")
    checkout = request.getfixturevalue("private") / "checkout"
    checkout.mkdir()
    asked = checkout / ".pgdata"
    kept = embedded.locate(asked, embedded.server_os_user())
    assert not kept.exists()
    yield asked, kept
    shutil.rmtree(kept)


@pytest.mark.slow
def test_serve_runs_on_the_embedded_server_stops_cleanly_and_keeps_users(pgdata: tuple[Path, Path]) -> None:
    asked, kept = pgdata
    first = Service(asked)
    created = first.client.post("/users", json={"email": "kept@example.com", "name": "Kept"})
    pid = postmaster_pid(kept)
    connected_as = api_roles(kept)
    assert first.stop(signal.SIGINT) in (0, 130)  # Ctrl-C

    assert created.status_code == 201
    assert connected_as == {APP_ROLE}, "the API connects as the app role, not the owner or superuser"
    assert pid is not None and not alive(pid), "Ctrl-C stops the embedded server too"
    assert f"data in {kept}," in first.output and "psql" in first.output
    assert "migrations applied: 0001_create_users, 0002_grant_app_role" in first.output
    assert f"-U {OWNER_ROLE} " in first.output, "the psql command logged opens the database as the owner"

    second = Service(asked)
    fetched = second.client.get(f"/users/{created.json()['id']}")
    pid = postmaster_pid(kept)
    second.stop(signal.SIGTERM)

    assert fetched.json() == created.json(), "users survive a restart"
    assert "migrations applied: none pending" in second.output
    assert pid is not None and not alive(pid), "SIGTERM stops the embedded server too"
    if asked != kept:
        assert f"cannot enter {asked.parents[1]}, so the data is kept in {kept}" in first.output
        assert [path.name for path in asked.iterdir()] == [embedded.KEPT_IN], "no data in the checkout"
        assert asked.parents[1].stat().st_mode & 0o777 == 0o700, "permissions are left as they were"


@pytest.mark.slow
def test_serve_with_embedded_replicas_reads_from_them_and_stops_them(scratch_pgdata: Path) -> None:
    first = Service(scratch_pgdata, EMBEDDED_REPLICAS="1", EMBEDDED_REPLICA_DELAY="300ms")
    time.sleep(0.6)  # the standby, made before the migrations, has replayed them
    made = first.client.post("/users", json={"email": "replicated@example.com", "name": "Replicated"})
    path, token = f"/users/{made.json()['id']}", made.headers["consistency-token"]
    stale = first.client.get(path)
    fresh = first.client.get(path, headers={"Consistency-Token": token})
    scraped = first.client.get("/metrics").text
    replica = postmaster_pid(scratch_pgdata / "replica-1")
    assert first.stop(signal.SIGTERM) == 0

    assert (stale.status_code, fresh.status_code) == (404, 200), "300 ms behind without the token, not with it"
    reads = [
        line for line in scraped.splitlines() if line.startswith('users_api_db_statements_total{db_role="replica"}')
    ]
    assert reads and float(reads[0].split()[-1]) >= 1
    assert replica is not None and not alive(replica), "SIGTERM stops the standby too"
    assert f"embedded replica 1: data in {scratch_pgdata / 'replica-1'}" in first.output

    second = Service(scratch_pgdata)  # EMBEDDED_REPLICAS=0 now
    kept = second.client.get(path)
    second.stop(signal.SIGTERM)

    assert kept.status_code == 200
    assert not (scratch_pgdata / "replica-1").exists(), "a standby no longer asked for is removed, and its slot"
    assert "removed the embedded replica 1" in second.output


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

    with cli.databases(ServiceSettings(_env_file=None, database_url=app, owner_database_url=owner)) as found:
        assert found == Databases(app_url=app, owner_url=owner)
    with cli.databases(ServiceSettings(_env_file=None, database_url=app)) as found:
        assert found == Databases(app_url=app, owner_url=app), "one role for both when no owner is given"


@pytest.mark.parametrize(
    ("environment", "words"),
    [
        ({"HOST": "0.0.0.0"}, "HOST=0.0.0.0 may be reached from other machines and nothing is authenticated"),
        ({"AUTH_ISSUER": "https://issuer.example"}, "AUTH_ISSUER is set without AUTH_AUDIENCE"),
        ({"AUTH_AUDIENCE": "users-api"}, "AUTH_AUDIENCE is set without AUTH_ISSUER"),
        (
            {"AUTH_ISSUER": "https://issuer.example", "AUTH_AUDIENCE": "a", "AUTH_ALGORITHMS": "RS256,HS256"},
            "AUTH_ALGORITHMS: HS256",
        ),
        ({"AUTH_ISSUER": "http://issuer.example", "AUTH_AUDIENCE": "a"}, "AUTH_ISSUER: must be https://"),
        ({"ALLOW_ANONYMOUS": "true", "AUTH_ISSUER": "https://i.example", "AUTH_AUDIENCE": "a"}, "ALLOW_ANONYMOUS"),
    ],
    ids=["reachable without auth", "no audience", "no issuer", "HS256", "plain http", "both"],
)
def test_serve_refuses_an_unsafe_or_incomplete_authentication_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    environment: dict[str, str],
    words: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(embedded, "WHEEL_PACKAGE", "no_such_wheel_installed")  # refused before any server
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert cli.main(["serve"]) == 2

    message = capsys.readouterr().err
    assert message.startswith("users-api: ") and words in message, message
    assert message.count("\n") == 1


def test_serve_refuses_an_issuer_whose_discovery_names_another(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(embedded, "WHEEL_PACKAGE", "no_such_wheel_installed")
    with identity_provider() as provider:
        provider.discovered_issuer = "https://someone-else.example"
        monkeypatch.setenv("AUTH_ISSUER", provider.issuer)
        monkeypatch.setenv("AUTH_AUDIENCE", "users-api")

        assert cli.main(["serve"]) == 2

    message = capsys.readouterr().err
    assert message.startswith("users-api: AUTH_ISSUER: the discovery document at ")
    assert "names the issuer 'https://someone-else.example'" in message and message.count("\n") == 1


def test_an_unreachable_database_url_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://nobody:nothing@127.0.0.1:{find_available_port()}/none")

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
    monkeypatch.setattr(migrator, "resource_dir", lambda name: tmp_path / name)
    monkeypatch.setattr(migrator, "LOCK_TIMEOUT_SECONDS", 1)  # yoyo reads a refused lock as a busy one
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
    monkeypatch.setattr(migrator, "apply", lambda *_: pytest.fail("serve migrated"))

    assert cli.main(["serve"]) == 0
    assert served == ["api.app:create_app"]
