"""Which PostgreSQL: one given by URL, or the embedded one started and stopped, restartable, never left running."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from api.ops import embedded
from api.ops.cluster import (
    APP_ROLE,
    DATABASE,
    OWNER_ROLE,
    Databases,
    EmbeddedCluster,
    RunningCluster,
    cluster_for,
    find_available_port,
    postmaster_pid,
)
from api.ops.embedded import EmbeddedError
from api.ops.processes import alive
from api.ops.provision import Role

ORPHAN_SCRIPT = """
import os, signal, sys
from pathlib import Path
import psycopg
from api.ops.cluster import EmbeddedCluster

with EmbeddedCluster(Path(sys.argv[1]), int(sys.argv[2]), durable=False) as server:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (note text)")
        conn.execute("INSERT INTO kept VALUES ('written before the kill')")
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_a_server_left_by_a_killed_parent_is_stopped_and_its_data_kept(scratch_pgdata: Path) -> None:
    port = find_available_port()
    killed = subprocess.run([sys.executable, "-c", ORPHAN_SCRIPT, str(scratch_pgdata), str(port)], check=False)
    assert killed.returncode == -signal.SIGKILL
    orphan = postmaster_pid(scratch_pgdata)
    assert orphan is not None and alive(orphan), "the killed parent left its server running"

    with EmbeddedCluster(scratch_pgdata, port, durable=False) as server:
        assert not alive(orphan)
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT note FROM kept").fetchall() == [("written before the kill",)]
        restarted = postmaster_pid(scratch_pgdata)

    assert restarted is not None and not alive(restarted), "leaving the block stops the server"
    assert not (scratch_pgdata / "cluster" / "postmaster.pid").exists(), "stopped cleanly, not killed"


@pytest.mark.slow
def test_a_second_user_of_the_same_folder_is_refused(scratch_pgdata: Path) -> None:
    with EmbeddedCluster(scratch_pgdata, find_available_port(), durable=False) as server:
        with pytest.raises(EmbeddedError, match="another users-api is using"):  # noqa: SIM117
            with EmbeddedCluster(scratch_pgdata, find_available_port(), durable=False):
                pass
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,), "the refusal left the first server alone"


@pytest.mark.slow
def test_the_server_listens_on_loopback_tcp_only_with_a_password(scratch_pgdata: Path) -> None:
    with EmbeddedCluster(scratch_pgdata, find_available_port(), durable=False) as server:
        with psycopg.connect(server.url()) as conn:
            listen = conn.execute("SHOW listen_addresses").fetchone()
            sockets = conn.execute("SHOW unix_socket_directories").fetchone()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(server.url().replace(str(server.password), "wrong"))

    assert listen == ("127.0.0.1",)
    assert sockets == ("",)
    assert (scratch_pgdata / "password").stat().st_mode & 0o777 == 0o600


def copy_of_the_wheel(into: Path) -> Path:
    """The wheel's server laid out as pip lays it out, under root's umask of a hardened host; its bin."""
    bin_dir = embedded.find_binaries()
    site, parts = embedded.wheel_parts(bin_dir)
    for part in parts:
        shutil.copytree(site / part, into / part, symlinks=True)
    for path in into.rglob("*"):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o027)  # what pip makes under umask 027
    return into / bin_dir.relative_to(site)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="only root's server runs as another user, who may be kept out")
def test_as_root_data_and_binaries_in_a_private_folder_start_stop_and_restart_with_the_data_kept(
    private: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_home = Path(tempfile.mkdtemp(prefix="users-api-test-"))  # in /tmp, standing in for /var/lib
    system_home.chmod(0o755)
    monkeypatch.setattr(embedded, "SYSTEM_HOME", system_home / "users-api")
    bin_dir = copy_of_the_wheel(private / "venv" / "site-packages")
    checkout = private / "checkout"
    try:
        with EmbeddedCluster(checkout / ".pgdata", find_available_port(), durable=False, bin_dir=bin_dir) as server:
            with psycopg.connect(server.url(), autocommit=True) as conn:
                conn.execute("CREATE TABLE kept (note text)")
                conn.execute("INSERT INTO kept VALUES ('written before the stop')")
            first = server
        checkout = checkout.rename(private / "moved")
        with EmbeddedCluster(checkout / ".pgdata", find_available_port(), durable=False, bin_dir=bin_dir) as server:
            with psycopg.connect(server.url()) as conn:
                kept = conn.execute("SELECT note FROM kept").fetchall()
            pid = postmaster_pid(server.data_dir)
        copied = [path.stat().st_mode for path in server.bin_dir.parents[2].rglob("*") if not path.is_symlink()]
        log_mode = (server.data_dir / "postgresql.log").stat().st_mode
    finally:
        shutil.rmtree(system_home)

    assert kept == [("written before the stop",)], "found again, though the checkout moved"
    assert (server.data_dir, server.bin_dir) == (first.data_dir, first.bin_dir)
    assert server.data_dir.is_relative_to(system_home) and server.bin_dir.is_relative_to(system_home)
    assert pid is not None and not alive(pid), "leaving the block stops the server"
    assert private.stat().st_mode & 0o777 == 0o700, "permissions are left as they were"
    assert {path.name for path in (checkout / ".pgdata").iterdir()} == {embedded.KEPT_IN}, "no data in the checkout"
    assert copied and all(mode & 0o444 == 0o444 and not mode & 0o022 for mode in copied), "readable, root's to write"
    assert log_mode & 0o777 == 0o600, "the log quotes rows: the server's user's alone"


@pytest.mark.slow
def test_first_use_makes_the_owner_and_app_roles_and_the_database_once(scratch_pgdata: Path) -> None:
    with EmbeddedCluster(scratch_pgdata, find_available_port(), durable=False) as server:
        owner, app = server.service_roles()
        again = server.service_roles()  # the next start: nothing to make, same passwords
        with psycopg.connect(server.url(DATABASE, app)) as conn:
            app_session = conn.execute("SELECT current_user, current_database()").fetchone()
        with psycopg.connect(server.url(DATABASE, owner)) as conn:
            database_owner = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
            ).fetchone()

    assert (owner.name, app.name) == (OWNER_ROLE, APP_ROLE)
    assert again == (owner, app)
    assert app_session == (APP_ROLE, DATABASE)
    assert database_owner == (OWNER_ROLE,)
    for secret in ("owner-password", "app-password", "pgpass"):
        assert (scratch_pgdata / secret).stat().st_mode & 0o777 == 0o600
    assert f"-U {OWNER_ROLE} {DATABASE}" in server.psql_command()


@pytest.mark.slow
def test_a_folder_made_before_the_roles_existed_is_refused_and_kept(scratch_pgdata: Path) -> None:
    with EmbeddedCluster(scratch_pgdata, find_available_port(), durable=False) as server:
        (scratch_pgdata / "database-created").touch()  # what an earlier users-api left, without roles
        with pytest.raises(EmbeddedError, match="made by an earlier users-api, before the owner and app roles"):
            server.service_roles()

    assert (scratch_pgdata / "cluster" / "PG_VERSION").is_file()


def test_a_given_server_is_used_as_given_and_never_started() -> None:
    given = RunningCluster("postgresql://app:s%40cret@db.example:6543/users_api?sslmode=require")

    assert (given.host, given.port, given.user, given.password) == ("db.example", 6543, "app", "s@cret")
    assert given.url() == "postgresql://app:s%40cret@db.example:6543/users_api?sslmode=require"
    assert given.url("other", Role("owner", "p/w")) == "postgresql://owner:p%2Fw@db.example:6543/other?sslmode=require"
    assert given.postmaster_pid() is None


@pytest.mark.parametrize(
    ("given", "made"),
    [
        ("postgresql://app:pw@[::1]:5432/app", "postgresql://owner:o@[::1]:5432/other"),
        ("postgresql:///app?host=/var/run/postgresql", "postgresql://owner:o@/other?host=%2Fvar%2Frun%2Fpostgresql"),
        (
            "postgresql://db.example/app?user=app&dbname=app&sslmode=verify-full",
            "postgresql://owner:o@db.example/other?sslmode=verify-full",
        ),
    ],
    ids=["IPv6 host", "socket folder", "login in the query"],
)
def test_a_url_made_from_a_given_one_keeps_its_host_and_options(given: str, made: str) -> None:
    assert RunningCluster(given).url("other", Role("owner", "o")) == made


def test_a_given_server_is_the_services_database_with_its_owner_when_given() -> None:
    app, owner = "postgresql://app:pw@db.example:5432/app", "postgresql://owner:pw@db.example:5432/app"

    assert RunningCluster(app, owner).service() == Databases(app_url=app, owner_url=owner)
    assert RunningCluster(app).service() == Databases(app_url=app, owner_url=app), "one role for both"


def test_a_url_picks_the_given_server_and_none_the_embedded_one(scratch_pgdata: Path) -> None:
    assert isinstance(cluster_for("postgresql://app@db.example/app", scratch_pgdata), RunningCluster)
    embedded_one = cluster_for(None, scratch_pgdata)

    assert isinstance(embedded_one, EmbeddedCluster) and embedded_one.port > 0
    assert not scratch_pgdata.exists(), "made only when it starts"


def test_an_available_port_can_be_listened_on() -> None:
    import socket

    port = find_available_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            accepted, _ = listener.accept()
            accepted.close()
            reached = client.getpeername()

    assert reached == ("127.0.0.1", port), "a client reached what listens there"
