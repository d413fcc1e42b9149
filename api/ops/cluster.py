"""Which PostgreSQL: one we were given (a URL), or the embedded one we start and stop.

In the manner of asyncpg's cluster.py: RunningCluster beside EmbeddedCluster, behind one interface,
and one find_available_port. The command line, the test suite and the bench all get their server
here, through cluster_for().
"""

import fcntl
import logging
import os
import secrets
import shutil
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict

from api.ops import embedded
from api.ops.embedded import EmbeddedError, Runner
from api.ops.processes import alive
from api.ops.provision import (
    ProvisionError,
    Role,
    create_database,
    create_replication_role,
    create_roles,
    find_psql,
)

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
DATABASE = "users_api"
# The roles of sql/setup/create_roles.sql: the owner runs the migrations, the API connects as the app role.
OWNER_ROLE = "users_api_owner"
APP_ROLE = "users_api_app"
# sql/setup/create_replication_role.sql's: what the embedded primary's hot standbys stream the WAL as.
REPLICATION_ROLE = "users_api_replication"
SLOT_WAL_CAP = "max_slot_wal_keep_size=1GB"
RESTART_SECONDS = 10  # how long a start waits for the children of a server killed with -9 to let its memory go
# For throwaway clusters (the test suite): durability costs time and protects nothing there.
NOT_DURABLE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def find_available_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Databases:
    """The service's database twice: as the app role (the API's) and as the owner (the migrations'); and its
    standbys' that reads may go to, as the app role."""

    app_url: str
    owner_url: str
    replica_urls: tuple[str, ...] = ()


class Cluster(ABC):
    """A PostgreSQL server, and the user it was given to us as (the embedded one's superuser)."""

    host: str
    port: int
    user: str
    password: str | None
    bin_dir: Path | None = None  # where psql and pgbench are, when we have them

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def url(self, database: str | None = None, role: Role | None = None) -> str:
        """`database` (the cluster's own by default) as `role` (the cluster's user by default)."""
        return f"postgresql://{self._login(role)}@{self.host}:{self.port}/{database or self.default_database}"

    def _login(self, role: Role | None) -> str:
        user, password = (self.user, self.password) if role is None else (role.name, role.password)
        return quote(user, safe="") + ("" if password is None else ":" + quote(password, safe=""))

    @property
    @abstractmethod
    def default_database(self) -> str: ...

    @abstractmethod
    def postmaster_pid(self) -> int | None:
        """The server's main process, when it runs on this machine and we know it."""

    @abstractmethod
    def service(self) -> Databases:
        """The service's database, as the app role and as the owner; logs where it is."""


class RunningCluster(Cluster):
    """A server we were given by URL (DATABASE_URL, TEST_DATABASE_URL): never started or stopped here."""

    def __init__(self, url: str, owner_url: str | None = None) -> None:
        info = conninfo_to_dict(url)
        self.given, self.owner_url = url, owner_url
        self.host = str(info.get("host", "127.0.0.1"))
        self.port = int(str(info.get("port", 5432)))
        self.user = str(info.get("user", SUPERUSER))
        self.password = str(info["password"]) if "password" in info else None
        self._database = str(info.get("dbname", self.user))

    @property
    def default_database(self) -> str:
        return self._database

    def url(self, database: str | None = None, role: Role | None = None) -> str:
        if database is None and role is None:
            return self.given
        # The given URL with another login and database: its host as written ([::1], or a socket
        # folder in its query) and what it asks of every connection (sslmode, options) kept.
        given = urlsplit(self.given)
        host = given.netloc.rpartition("@")[2]
        query = urlencode([(k, v) for k, v in parse_qsl(given.query) if k not in ("user", "password", "dbname")])
        return urlunsplit((given.scheme, f"{self._login(role)}@{host}", f"/{database or self._database}", query, ""))

    def postmaster_pid(self) -> int | None:
        return None  # only the server could say, and only when it runs here

    def service(self) -> Databases:
        where = urlsplit(self.given)
        log.info("PostgreSQL from DATABASE_URL: %s:%s%s", where.hostname, where.port or 5432, where.path)
        return Databases(self.given, self.owner_url or self.given)


class EmbeddedCluster(Cluster):
    """The wheel's PostgreSQL with its files in `data_dir`: started (initialised if new) on entry, stopped on exit.

    As root, `data_dir` and `bin_dir` (the wheel's, by default) may be replaced by places the server's
    user can enter (api/ops/embedded.py): the cluster's `data_dir` and `bin_dir` say where they are.
    """

    host = "127.0.0.1"
    user = SUPERUSER

    def __init__(self, data_dir: Path, port: int, *, durable: bool = True, bin_dir: Path | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.durable = durable
        self.bin_dir: Path = bin_dir or embedded.find_binaries()
        self.password: str | None = None
        self._stack = ExitStack()

    @property
    def default_database(self) -> str:
        return "postgres"

    def __enter__(self) -> Self:
        with ExitStack() as stack:  # closed here if the start fails; kept until __exit__ if it succeeds
            self._start(stack)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self, stack: ExitStack) -> None:
        user = embedded.server_os_user() if os.geteuid() == 0 else None
        if user is not None:
            self.bin_dir = embedded.binaries_reachable_by(user, self.bin_dir)
            asked, self.data_dir = self.data_dir, embedded.locate(self.data_dir, user)
            if self.data_dir != asked:
                embedded.make_folders(asked, mode=0o700)
                (asked / embedded.KEPT_IN).write_text(f"{self.data_dir}\n", encoding="utf-8")
                embedded.system_folder(self.data_dir.parent)
        # The server's user passes through the data folder to its own cluster and log, and reads nothing
        # else there (the passwords are 0600 and root's); 0711 when this is root and made the folder.
        embedded.make_folders(self.data_dir, mode=0o711 if user is not None else 0o700)
        self._lock(stack)
        runner = Runner(self.bin_dir, self.data_dir, user)
        cluster = self.data_dir / "cluster"
        if not (cluster / "PG_VERSION").is_file():
            _initdb(runner, self.data_dir, cluster)
        self.password = _read_password(self.data_dir / "password")
        if postmaster_pid(self.data_dir) is not None:
            # Its users-api died without stopping it (SIGKILL): we hold the lock, so nobody uses it.
            log.warning("stopping the embedded PostgreSQL a killed users-api left running in %s", cluster)
            runner.pg_ctl_stop(cluster)
        release_a_killed_servers_lock(cluster)  # the server itself killed, perhaps a zombie no one reaps
        # A replica's slot keeps the WAL it has not received: at most this much, should it stay stopped for good.
        settings = [f"port={self.port}", "listen_addresses=127.0.0.1", "unix_socket_directories=", SLOT_WAL_CAP]
        # Registered before the start: one that fails part-way (a timeout) may still leave a server running.
        stack.callback(stop_if_running, runner, cluster)
        runner.pg_ctl_start(
            cluster, self.data_dir / "postgresql.log", [*settings, *(() if self.durable else NOT_DURABLE)]
        )
        log.info("embedded PostgreSQL: data in %s, listening on 127.0.0.1:%d", self.data_dir, self.port)

    def _lock(self, stack: ExitStack) -> None:
        """Hold the data folder's lock until the stop: two users-api never share one cluster."""
        lock_file = stack.enter_context((self.data_dir / "lock").open("a"))
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EmbeddedError(
                f"another users-api is using the embedded PostgreSQL in {self.data_dir}; "
                "stop it, or set EMBEDDED_PGDATA to another folder"
            ) from None

    def postmaster_pid(self) -> int | None:
        return postmaster_pid(self.data_dir)

    def psql_command(self) -> str:
        """A command that opens psql on the service's database as the owner, the password read from pgpass."""
        return (
            f"PGPASSFILE={self.data_dir / 'pgpass'} {self.bin_dir / 'psql'} "
            f"-h 127.0.0.1 -p {self.port} -U {OWNER_ROLE} {DATABASE}"
        )

    def service(self) -> Databases:
        """The owner and app roles and the service's database, made on first use by sql/setup/."""
        owner, app = self.service_roles()
        log.info("connect with: %s", self.psql_command())
        return Databases(self.url(DATABASE, app), self.url(DATABASE, owner))

    def service_roles(self) -> tuple[Role, Role]:
        """The owner and app roles, made with the service's database on first use by sql/setup/."""
        data_dir = self.data_dir
        roles_made, database_made = data_dir / "roles-created", data_dir / "database-created"
        if database_made.exists() and not roles_made.exists():
            raise EmbeddedError(
                f"{data_dir} was made by an earlier users-api, before the owner and app roles: move it "
                "aside (or set EMBEDDED_PGDATA to another folder) to start afresh; its users stay in it"
            )
        owner = Role(OWNER_ROLE, _read_password(data_dir / "owner-password", create=not roles_made.exists()))
        app = Role(APP_ROLE, _read_password(data_dir / "app-password", create=not roles_made.exists()))
        logins = [(SUPERUSER, self.password), (owner.name, owner.password), (app.name, app.password)]
        _write_secret(data_dir / "pgpass", "".join(f"127.0.0.1:{self.port}:*:{u}:{p}\n" for u, p in logins))
        with provisioning():
            psql = find_psql(self.bin_dir)
            # Markers written once each script succeeds: only a new cluster, or one cut short, runs them.
            if not roles_made.exists():
                create_roles(psql, self.url(), owner, app)
                roles_made.touch()
            if not database_made.exists():
                create_database(psql, self.url(), DATABASE, owner, app)
                database_made.touch()
        return owner, app

    def replication_role(self) -> Role:
        """The role standbys stream as, made on first use by sql/setup/create_replication_role.sql."""
        made = self.data_dir / "replication-role-created"
        role = Role(REPLICATION_ROLE, _read_password(self.data_dir / "replication-password", create=not made.exists()))
        if not made.exists():
            with provisioning():
                create_replication_role(find_psql(self.bin_dir), self.url(), role)
            made.touch()
        return role


def cluster_for(
    url: str | None, data_dir: Path, port: int | None = None, *, owner_url: str | None = None, durable: bool = True
) -> Cluster:
    """The server at `url` (with the owner's `owner_url`) when one is given; otherwise the embedded one
    with its files in `data_dir`, on `port` (any free one by default)."""
    if url:
        return RunningCluster(url, owner_url)
    return EmbeddedCluster(data_dir, port or find_available_port(), durable=durable)


@contextmanager
def provisioning() -> Iterator[None]:
    """A setup script's failure (psql's own words) as the embedded server's error."""
    try:
        yield
    except ProvisionError as error:
        raise EmbeddedError(str(error)) from None


def stop_if_running(runner: Runner, cluster: Path) -> bool:
    """Stop the server of `cluster` if it runs; whether it did."""
    if not runner.pg_ctl_status(cluster):
        return False
    runner.pg_ctl_stop(cluster)
    return True


def release_a_killed_servers_lock(cluster: Path) -> None:
    """Remove the lock file of a server killed with -9, once none of its processes holds its memory.

    Where nothing reaps the killed postmaster (a container whose first process does not), it stays a
    zombie whose pid PostgreSQL takes for a running server, and refuses to start. Its children leave
    when they see it gone; until then they are attached to its shared memory, whose id the lock file
    holds, and a server started beside them could corrupt the data: so the wait.
    """
    lock = cluster / "postmaster.pid"
    try:
        lines = lock.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    if not lines or not lines[0].strip().isdigit() or alive(int(lines[0])):
        return
    memory = lines[6].split()[-1] if len(lines) > 6 and lines[6].split() else None
    deadline = time.monotonic() + RESTART_SECONDS
    while memory is not None and _attached(memory) and time.monotonic() < deadline:
        time.sleep(0.1)
    if memory is None or not _attached(memory):
        lock.unlink(missing_ok=True)


def _attached(shmid: str) -> bool:
    """Some process is attached to the System V shared memory segment `shmid` (/proc/sysvipc/shm), or that
    cannot be told: then the lock file stays, and PostgreSQL's own check decides."""
    try:
        rows = [row.split() for row in Path("/proc/sysvipc/shm").read_text(encoding="utf-8").splitlines()[1:]]
        # key shmid perms size cpid lpid nattch ...
        return any(len(row) > 6 and row[1] == shmid and int(row[6]) > 0 for row in rows)
    except (OSError, ValueError):
        return True


def postmaster_pid(data_dir: Path) -> int | None:
    """The main process of the embedded server whose files are in `data_dir`, while it runs."""
    try:
        pid = int((data_dir / "cluster" / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    return pid if alive(pid) else None


def _initdb(runner: Runner, data_dir: Path, cluster: Path) -> None:
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
