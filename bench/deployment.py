"""A deployment of several hosts on one machine, for `make bench-scale`: CPU cgroups, PgBouncer, HAProxy, API hosts.

Each "host" is a group of processes in a CPU cgroup of its own, capped at the same share of a core: an API
host (`users-api serve`, one worker), the primary with PgBouncer in front of it, each standby. HAProxy and
wrk are the clients' side, and are not capped. Everything listens on 127.0.0.1, on ports found free.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from api.ops import embedded
from api.ops.cluster import find_available_port
from bench import systems

CGROUP_V2 = Path("/sys/fs/cgroup")
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
CGROUP_V1_CPUACCT = Path("/sys/fs/cgroup/cpuacct")
PERIOD_US = 100_000
READY_SECONDS = 60.0


class CpuCaps:
    """CPU cgroups under one parent of the bench's own, each capped at `share` of a core unless asked not to be, and
    the CPU time each has used (cgroup v2, or v1's cpu and cpuacct hierarchies)."""

    def __init__(self, share: float, name: str = "users-api-bench-scale") -> None:
        if (CGROUP_V2 / "cgroup.controllers").is_file() and "cpu" in (CGROUP_V2 / "cgroup.controllers").read_text():
            self.version, root, accounting = 2, CGROUP_V2, CGROUP_V2
        elif (CGROUP_V1_CPU / "cpu.cfs_quota_us").is_file() and (CGROUP_V1_CPUACCT / "cpuacct.usage").is_file():
            self.version, root, accounting = 1, CGROUP_V1_CPU, CGROUP_V1_CPUACCT
        else:
            raise RuntimeError(
                "no CPU cgroup controller (cgroup v2 with cpu, or v1's cpu and cpuacct) to cap hosts with"
            )
        self.share = share
        self.parents = [root / name] if self.version == 2 else [root / name, accounting / name]
        for parent in self.parents:
            parent.mkdir(exist_ok=True)
        if self.version == 2:
            (root / "cgroup.subtree_control").write_text("+cpu")
            (self.parents[0] / "cgroup.subtree_control").write_text("+cpu")
        self.groups: dict[str, list[Path]] = {}

    def group(self, name: str, *, capped: bool = True) -> list[Path]:
        """The cgroup `name` (v1: in both hierarchies), made on first use; capped at the share unless `capped` is
        false (the load generator's, the balancer's: measured, not limited)."""
        if name not in self.groups:
            paths = [parent / name for parent in self.parents]
            for path in paths:
                path.mkdir(exist_ok=True)
            quota = round(self.share * PERIOD_US) if capped else -1
            if self.version == 2:
                (paths[0] / "cpu.max").write_text(f"{quota if capped else 'max'} {PERIOD_US}")
            else:
                (paths[0] / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (paths[0] / "cpu.cfs_quota_us").write_text(str(quota))
            self.groups[name] = paths
        return self.groups[name]

    def join(self, name: str, pid: int, *, capped: bool = True) -> None:
        """Move process `pid` and every process under it into `name`; processes they start later follow."""
        if pid <= 0:  # 0 would be this process (and, through descendants, every process): the machine capped
            raise ValueError(f"no process to move into {name}: {pid}")
        for member in [pid, *descendants(pid)]:
            for path in self.group(name, capped=capped):
                with suppress(ProcessLookupError, OSError):  # it ended meanwhile
                    (path / "cgroup.procs").write_text(str(member))

    def joining(self, name: str, *, capped: bool = True) -> Callable[[], None]:
        """For Popen's preexec_fn: the child joins `name` before it runs its program."""
        procs = [path / "cgroup.procs" for path in self.group(name, capped=capped)]

        def join() -> None:
            for path in procs:
                path.write_text(str(os.getpid()))

        return join

    def used(self) -> dict[str, float]:
        """CPU seconds each group has used so far."""
        found = {}
        for name, paths in self.groups.items():
            if self.version == 2:
                stat = dict(line.split() for line in (paths[0] / "cpu.stat").read_text().splitlines())
                found[name] = int(stat["usage_usec"]) / 1e6
            else:
                found[name] = int((paths[1] / "cpuacct.usage").read_text()) / 1e9
        return found

    def remove(self) -> None:
        """Remove the groups; their processes must have ended."""
        for path in [*(path for paths in self.groups.values() for path in paths), *self.parents]:
            with suppress(OSError):  # a process still in it, ending: the folder goes when the next run removes it
                path.rmdir()


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / ticks, sum(fields[:8]) / ticks


def descendants(pid: int) -> list[int]:
    """Every process under `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Stop `process` by its pid, and kill it if it has not ended within `timeout`."""
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


@contextmanager
def api_host(caps: CpuCaps, name: str, env: dict[str, str], folder: Path) -> Iterator[str]:
    """`users-api serve` (one worker) in the cgroup `name` while the block runs, its output in `folder`; its URL."""
    host = systems.users_api(env["DATABASE_URL"], find_available_port(), 1, name=name)
    host.env |= env
    host.preexec_fn = caps.joining(name)
    host.start(folder)
    try:
        yield host.url
    finally:
        host.stop()


HAPROXY_CONFIG = """global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    option http-keep-alive

frontend api
    bind 127.0.0.1:{port}
    default_backend hosts

backend hosts
    balance leastconn
    option httpchk GET /ready
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1
{servers}
"""


@contextmanager
def haproxy(program: str, caps: CpuCaps, hosts: list[str], folder: Path) -> Iterator[str]:
    """HAProxy in front of `hosts` (base URLs), least connections first, checking each one's /ready."""
    port = find_available_port()
    servers = "\n".join(
        f"    server host{number} {url.removeprefix('http://')} check" for number, url in enumerate(hosts, 1)
    )
    config = folder / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(port=port, servers=servers), encoding="utf-8")
    # Ready once a host passes its check: until then HAProxy answers 503.
    balancer = systems.System("haproxy", [program, "-db", "-f", str(config)], {}, port, probe="/ready",
                              preexec_fn=caps.joining("haproxy", capped=False))  # fmt: skip
    balancer.start(folder)
    try:
        yield balancer.url
    finally:
        balancer.stop()


PGBOUNCER_CONFIG = """[databases]
{database} = host=127.0.0.1 port={server_port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {folder}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
server_reset_query =
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""


@contextmanager
def pgbouncer(
    program: str, caps: CpuCaps, group: str, server_port: int, database: str, role: tuple[str, str], pool_size: int
) -> Iterator[int]:
    """PgBouncer in transaction mode in front of the server on `server_port`, as the embedded server's OS user
    (it refuses to run as root), in the cgroup `group`; the port it listens on. `role`: (name, password)."""
    user = embedded.server_os_user()
    folder = Path(tempfile.mkdtemp(prefix="users-api-pgbouncer-"))
    port = find_available_port()
    try:
        (folder / "pgbouncer.ini").write_text(
            PGBOUNCER_CONFIG.format(
                database=database, server_port=server_port, port=port, folder=folder, pool_size=pool_size
            ),
            encoding="utf-8",
        )
        userlist = folder / "userlist.txt"
        userlist.touch(mode=0o600)
        userlist.write_text(f'"{role[0]}" "{role[1]}"\n', encoding="utf-8")
        for path in (folder, userlist, folder / "pgbouncer.ini"):
            os.chown(path, user.pw_uid, user.pw_gid)
        join = caps.joining(group)

        def as_server_user() -> None:
            join()
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

        process = subprocess.Popen(  # noqa: S603 - the installed pgbouncer with a configuration written here
            [program, str(folder / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=as_server_user,
        )
        try:
            wait_listening(port, process, folder / "pgbouncer.log")
            yield port
        finally:
            stop(process, signal.SIGINT)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
    raise RuntimeError(f"PgBouncer did not listen on {port}: {tail}")
