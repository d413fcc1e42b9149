"""The embedded PostgreSQL: found without the wheel's Python layer, restartable, never left running."""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from api import embedded
from api.embedded import APP_ROLE, DATABASE, OWNER_ROLE, EmbeddedError, embedded_postgres, prepare_service

from support import free_port


def server_pid(scratch_pgdata: Path) -> int | None:
    pid_file = scratch_pgdata / "cluster" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for whichever process adopted it to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


ORPHAN_SCRIPT = """
import os, signal, sys
from pathlib import Path
import psycopg
from api.embedded import embedded_postgres

with embedded_postgres(Path(sys.argv[1]), int(sys.argv[2]), durable=False) as server:
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (note text)")
        conn.execute("INSERT INTO kept VALUES ('written before the kill')")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_server_left_by_a_killed_parent_is_stopped_and_its_data_kept(scratch_pgdata: Path) -> None:
    port = free_port()
    killed = subprocess.run([sys.executable, "-c", ORPHAN_SCRIPT, str(scratch_pgdata), str(port)], check=False)
    assert killed.returncode == -signal.SIGKILL
    orphan = server_pid(scratch_pgdata)
    assert orphan is not None and alive(orphan), "the killed parent left its server running"

    with embedded_postgres(scratch_pgdata, port, durable=False) as server:
        assert not alive(orphan)
        with psycopg.connect(server.url("postgres")) as conn:
            assert conn.execute("SELECT note FROM kept").fetchall() == [("written before the kill",)]
        restarted = server_pid(scratch_pgdata)

    assert restarted is not None and not alive(restarted), "leaving the block stops the server"
    assert server_pid(scratch_pgdata) is None


def test_a_second_user_of_the_same_folder_is_refused(scratch_pgdata: Path) -> None:
    with embedded_postgres(scratch_pgdata, free_port(), durable=False) as server:
        with pytest.raises(EmbeddedError, match="another users-api is using"):  # noqa: SIM117
            with embedded_postgres(scratch_pgdata, free_port(), durable=False):
                pass
        with psycopg.connect(server.url("postgres")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,), "the refusal left the first server alone"


def test_the_server_listens_on_loopback_tcp_only_with_a_password(scratch_pgdata: Path) -> None:
    with embedded_postgres(scratch_pgdata, free_port(), durable=False) as server:
        with psycopg.connect(server.url("postgres")) as conn:
            listen = conn.execute("SHOW listen_addresses").fetchone()
            sockets = conn.execute("SHOW unix_socket_directories").fetchone()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(server.url("postgres").replace(server.password, "wrong"))

    assert listen == ("127.0.0.1",)
    assert sockets == ("",)
    assert (scratch_pgdata / "password").stat().st_mode & 0o777 == 0o600


def test_without_the_wheel_the_message_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "WHEEL_PACKAGE", "no_such_wheel_installed")

    with pytest.raises(EmbeddedError, match=r"pip install 'users-api\[embedded\]'.*or set DATABASE_URL"):
        embedded.find_binaries()


def test_the_binaries_are_found_without_importing_the_wheel() -> None:
    bin_dir = embedded.find_binaries()

    assert (bin_dir / "pg_ctl").is_file()
    assert embedded.WHEEL_PACKAGE not in sys.modules


STRANGER = pwd.struct_passwd(("stranger", "x", 64999, 64999, "", "/", "/bin/false"))


def test_data_the_server_user_cannot_reach_is_kept_in_a_system_folder_named_after_the_checkout(private: Path) -> None:
    first, second = private / "project" / ".pgdata", private / "other" / "project" / ".pgdata"

    found = embedded.locate(first, STRANGER)

    assert found.parent == embedded.SYSTEM_HOME / "clusters"
    assert found.name.startswith("project-pgdata-")
    assert embedded.locate(first, STRANGER) == found, "the same folder at every start"
    assert embedded.locate(second, STRANGER) not in (found, second), "two checkouts never share a cluster"
    assert private.stat().st_mode & 0o777 == 0o700, "permissions are left as they were"
    assert not (private / "project").exists()


def test_data_the_server_user_can_reach_stays_where_it_was_asked_for(scratch_pgdata: Path) -> None:
    assert embedded.locate(scratch_pgdata, STRANGER) == scratch_pgdata


def test_a_cluster_already_in_a_private_folder_is_refused_and_left_as_it_is(private: Path) -> None:
    cluster = private / "project" / ".pgdata" / "cluster"
    cluster.mkdir(parents=True)
    (cluster / "PG_VERSION").write_text("18\n")

    with pytest.raises(EmbeddedError, match=f"cannot enter {private}, and .* holds a cluster: .*mv "):
        embedded.locate(cluster.parent, STRANGER)
    assert (cluster / "PG_VERSION").read_text() == "18\n"


def test_an_existing_data_folder_the_server_user_cannot_enter_is_not_opened_up(private: Path) -> None:
    found = embedded.locate(private, STRANGER)  # EMBEDDED_PGDATA=$(mktemp -d)

    assert found.parent == embedded.SYSTEM_HOME / "clusters"
    assert private.stat().st_mode & 0o777 == 0o700


def test_a_pointer_to_the_data_is_followed_only_into_the_system_folder(private: Path) -> None:
    (private / embedded.KEPT_IN).write_text("/etc\n")

    with pytest.raises(EmbeddedError, match="names /etc, which is not a folder of"):
        embedded.locate(private, STRANGER)


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
        with embedded_postgres(checkout / ".pgdata", free_port(), durable=False, bin_dir=bin_dir) as server:
            with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
                conn.execute("CREATE TABLE kept (note text)")
                conn.execute("INSERT INTO kept VALUES ('written before the stop')")
            first = server
        checkout = checkout.rename(private / "moved")
        with embedded_postgres(checkout / ".pgdata", free_port(), durable=False, bin_dir=bin_dir) as server:
            with psycopg.connect(server.url("postgres")) as conn:
                kept = conn.execute("SELECT note FROM kept").fetchall()
            pid = server_pid(server.data_dir)
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


def test_first_use_makes_the_owner_and_app_roles_and_the_database_once(scratch_pgdata: Path) -> None:
    with embedded_postgres(scratch_pgdata, free_port(), durable=False) as server:
        owner, app = prepare_service(server)
        again = prepare_service(server)  # the next start: nothing to make, same passwords
        with psycopg.connect(server.url(role=app)) as conn:
            app_session = conn.execute("SELECT current_user, current_database()").fetchone()
        with psycopg.connect(server.url(role=owner)) as conn:
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


def test_a_folder_made_before_the_roles_existed_is_refused_and_kept(scratch_pgdata: Path) -> None:
    with embedded_postgres(scratch_pgdata, free_port(), durable=False) as server:
        (scratch_pgdata / "database-created").touch()  # what an earlier users-api left, without roles
        with pytest.raises(EmbeddedError, match="made by an earlier users-api, before the owner and app roles"):
            prepare_service(server)

    assert (scratch_pgdata / "cluster" / "PG_VERSION").is_file()
