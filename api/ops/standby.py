"""The embedded primary's hot standbys: made by `pg_basebackup -R`, streaming over slots of their own.

Beside api/ops/cluster.py's servers, behind the same interface (as asyncpg's HotStandbyCluster): what
`EMBEDDED_REPLICAS` starts for `users-api serve`, and what the test suite reads from.
"""

import logging
import os
import re
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Self

from api.ops import embedded
from api.ops.cluster import (
    DATABASE,
    SUPERUSER,
    Cluster,
    Databases,
    EmbeddedCluster,
    find_available_port,
    postmaster_pid,
    provisioning,
    release_a_killed_servers_lock,
    stop_if_running,
)
from api.ops.embedded import EmbeddedError, Runner
from api.ops.provision import drop_replication_slot, find_psql, replication_slot_status

log = logging.getLogger(__name__)

APPLY_DELAY = re.compile(r"([0-9]+)(us|ms|s|min|h)?")  # recovery_min_apply_delay, as PostgreSQL writes a time
FOLDER = re.compile(r"replica-([0-9]+)")


class EmbeddedReplica(Cluster):
    """A hot standby of an embedded primary, streaming its WAL over its own replication slot.

    Made once by `pg_basebackup -R` as the replication role, its files beside the primary's
    (`<primary's data>/replica-<number>`, kept as the primary's are); started on entry, stopped on exit.
    With `apply_delay` ("300ms"), it applies the WAL that much later (`recovery_min_apply_delay`): reads
    from it are stale by at least that much. The primary must be running.
    """

    host = "127.0.0.1"
    user = SUPERUSER

    def __init__(self, primary: EmbeddedCluster, number: int, *, apply_delay: str | None = None) -> None:
        if apply_delay is not None and not APPLY_DELAY.fullmatch(apply_delay):
            raise ValueError(f"a replica's apply delay is a number and a unit (300ms, 2s, 1min), not {apply_delay!r}")
        self.primary = primary
        self.number = number
        self.port = find_available_port()
        self.apply_delay = apply_delay
        self.data_dir = primary.data_dir / f"replica-{number}"
        self.bin_dir: Path = primary.bin_dir
        self.password = primary.password  # the primary's superuser, as the catalogue is the primary's
        self.slot = f"users_api_replica_{number}"
        self._runner = Runner(self.bin_dir, self.data_dir, embedded.server_os_user() if os.geteuid() == 0 else None)
        self._stack = ExitStack()

    @property
    def default_database(self) -> str:
        return "postgres"

    def __enter__(self) -> Self:
        with ExitStack() as stack:
            cluster = self.data_dir / "cluster"
            if self.postmaster_pid() is not None and stop_if_running(self._runner, cluster):
                log.warning("stopped the embedded replica %d a killed users-api left running", self.number)
            if not self._still_a_standby_of_the_primary(cluster):
                self._base_backup(cluster)
            stack.callback(stop_if_running, self._runner, cluster)
            self.start()
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def start(self) -> None:
        """Start the standby (again, after a kill -9 say): it goes on streaming from where it stopped."""
        cluster = self.data_dir / "cluster"
        if self.postmaster_pid() is not None:
            return
        release_a_killed_servers_lock(cluster)  # after a kill -9: once its children have let its memory go
        settings = [f"port={self.port}", "listen_addresses=127.0.0.1", "unix_socket_directories="]
        if self.apply_delay:
            settings.append(f"recovery_min_apply_delay={self.apply_delay}")
        self._runner.pg_ctl_start(cluster, self.data_dir / "postgresql.log", settings)
        log.info("embedded replica %d: data in %s, listening on 127.0.0.1:%d", self.number, self.data_dir, self.port)

    def promote(self) -> None:
        """Make the standby a primary of its own (no longer in recovery), as a failover would."""
        done = self._runner.run("pg_ctl", "promote", "-w", "-D", str(self.data_dir / "cluster"))
        if done.returncode != 0:
            raise EmbeddedError(f"pg_ctl promote failed: {done.stdout.strip()}")

    def postmaster_pid(self) -> int | None:
        return postmaster_pid(self.data_dir)

    def service(self) -> Databases:
        """The service's database on the standby, as the app role; the owner's too, though it cannot write."""
        owner, app = self.primary.service_roles()
        return Databases(self.url(DATABASE, app), self.url(DATABASE, owner))

    def _still_a_standby_of_the_primary(self, cluster: Path) -> bool:
        """Its files are a standby's (not promoted since), made from the primary on the port it has now, whose
        slot for it still holds the WAL it needs (not dropped, not past max_slot_wal_keep_size)."""
        made_from = self.data_dir / "primary-port"
        return (
            (cluster / "PG_VERSION").is_file()
            and (cluster / "standby.signal").is_file()
            and made_from.is_file()
            and made_from.read_text(encoding="utf-8").strip() == str(self.primary.port)
            and self._slot_status() not in ("", "lost")
        )

    def _slot_status(self) -> str:
        """The primary's `wal_status` of this standby's slot; "" when it has no such slot."""
        with provisioning():
            return replication_slot_status(find_psql(self.bin_dir), self.primary.url(), self.slot)

    def _base_backup(self, cluster: Path) -> None:
        self.primary.service_roles()  # made first on a new primary: a delayed copy would not let them log in yet
        role = self.primary.replication_role()
        with provisioning():  # one an earlier replica of this number left: its files are gone, so is its WAL
            drop_replication_slot(find_psql(self.bin_dir), self.primary.url(), self.slot)
        embedded.make_folders(self.data_dir, mode=0o700)
        self._runner.chown(self.data_dir)
        if cluster.exists():
            shutil.rmtree(cluster)  # a base backup cut short, a promoted copy, or one of a primary moved since
        log.info("embedded replica %d: base backup of the primary into %s", self.number, cluster)
        # The password through the environment, not the command line; -R writes it into the standby's
        # primary_conninfo (postgresql.auto.conf, 0600, the server's user's).
        done = self._runner.run(
            "pg_basebackup", "-D", str(cluster), "-h", self.primary.host, "-p", str(self.primary.port),
            "-U", role.name, "-R", "-X", "stream", "-c", "fast", "-C", "-S", self.slot,
            env={"PGPASSWORD": role.password, "PGAPPNAME": self.slot}, inherit_libpq=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise EmbeddedError(f"pg_basebackup failed for {cluster}: {done.stdout.strip()}")
        (self.data_dir / "primary-port").write_text(f"{self.primary.port}\n", encoding="utf-8")


def forget_replicas_beyond(primary: EmbeddedCluster, count: int) -> None:
    """Remove the standbys numbered above `count` that an earlier run made, and their slots on the primary:
    a slot no standby streams from keeps up to max_slot_wal_keep_size of WAL."""
    for folder in sorted(primary.data_dir.glob("replica-*")):
        found = FOLDER.fullmatch(folder.name)
        if found is None or int(found.group(1)) <= count:
            continue
        runner = Runner(primary.bin_dir, folder, embedded.server_os_user() if os.geteuid() == 0 else None)
        stop_if_running(runner, folder / "cluster")
        with provisioning():
            drop_replication_slot(find_psql(primary.bin_dir), primary.url(), f"users_api_replica_{found.group(1)}")
        shutil.rmtree(folder)
        log.info("removed the embedded replica %s, beyond EMBEDDED_REPLICAS=%d, and its slot", found.group(1), count)
