"""The embedded PostgreSQL: found without the wheel's Python layer, restartable, never left running."""

import pwd
import signal
import subprocess
import sys
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


def test_a_folder_the_server_user_cannot_enter_is_refused_not_opened(tmp_path: Path) -> None:
    private = tmp_path / "home"
    target = private / "project" / ".pgdata"
    target.mkdir(parents=True)
    private.chmod(0o700)
    stranger = pwd.struct_passwd(("stranger", "x", 64999, 64999, "", "/", "/bin/false"))

    with pytest.raises(EmbeddedError, match=f"cannot enter {private}"):
        embedded._check_reachable(target, stranger)
    assert private.stat().st_mode & 0o777 == 0o700, "permissions are left as they were"


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
