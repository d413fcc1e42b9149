"""The embedded primary's hot standbys (api/ops/cluster.py's EmbeddedReplica): they stream its writes, read only,
later by their delay if they have one, come back after a kill -9, and stop being standbys when promoted."""

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from api.ops.cluster import DATABASE, EmbeddedCluster, find_available_port
from api.ops.processes import alive
from api.ops.standby import EmbeddedReplica

pytestmark = pytest.mark.slow

WAIT_SECONDS = 15.0  # far above what streaming takes on loopback; only a broken standby comes near it


@pytest.fixture
def primary(scratch_pgdata: Path) -> Iterator[EmbeddedCluster]:
    """An embedded primary with the service's database, holding a table `notes` the owner writes."""
    with EmbeddedCluster(scratch_pgdata, find_available_port(), durable=False) as server:
        with psycopg.connect(server.service().owner_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE notes (note text NOT NULL)")
        yield server


def note_on(url: str, note: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM notes WHERE note = %s", [note]).fetchone() == (1,)


def wait_for_note(url: str, note: str) -> float:
    """Seconds until `note` is readable at `url`; fails the test after WAIT_SECONDS."""
    started = time.monotonic()
    while not note_on(url, note):
        assert time.monotonic() - started < WAIT_SECONDS, f"{note!r} never reached the standby"
        time.sleep(0.02)
    return time.monotonic() - started


def write(primary: EmbeddedCluster, note: str) -> None:
    with psycopg.connect(primary.service().owner_url, autocommit=True) as conn:
        conn.execute("INSERT INTO notes (note) VALUES (%s)", [note])


def test_a_replica_streams_the_primarys_writes_and_takes_none_of_its_own(primary: EmbeddedCluster) -> None:
    with EmbeddedReplica(primary, 1) as replica:
        write(primary, "streamed")
        wait_for_note(replica.service().owner_url, "streamed")
        with psycopg.connect(replica.service().owner_url, autocommit=True) as conn:
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO notes (note) VALUES ('on the standby')")
        with psycopg.connect(replica.service().app_url) as conn:
            app_session = conn.execute("SELECT current_user, current_database()").fetchone()
        pid = replica.postmaster_pid()

    assert in_recovery == (True,)
    assert app_session == ("users_api_app", DATABASE), "the roles are the primary's"
    assert pid is not None and not alive(pid), "leaving the block stops the standby"
    assert (primary.data_dir / "replication-password").stat().st_mode & 0o777 == 0o600


def test_a_delayed_replica_is_stale_until_its_delay_has_passed(primary: EmbeddedCluster) -> None:
    with EmbeddedReplica(primary, 1, apply_delay="1s") as replica:
        write(primary, "later")
        stale = not note_on(replica.service().owner_url, "later")
        waited = wait_for_note(replica.service().owner_url, "later")

    assert stale, "read at once, the write was not applied yet"
    assert waited >= 0.5


def test_a_replica_killed_comes_back_and_catches_up(primary: EmbeddedCluster) -> None:
    with EmbeddedReplica(primary, 1) as replica:
        killed = replica.postmaster_pid()
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + WAIT_SECONDS
        while alive(killed) and time.monotonic() < deadline:
            time.sleep(0.02)
        write(primary, "while it was down")

        replica.start()
        wait_for_note(replica.service().owner_url, "while it was down")


def test_a_promoted_replica_is_out_of_recovery(primary: EmbeddedCluster) -> None:
    with EmbeddedReplica(primary, 1) as replica:
        replica.promote()
        with psycopg.connect(replica.service().owner_url, autocommit=True) as conn:
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()

    assert in_recovery == (False,)


def test_a_replica_made_again_after_its_files_were_removed_starts_afresh(primary: EmbeddedCluster) -> None:
    with EmbeddedReplica(primary, 1):
        pass
    shutil.rmtree(primary.data_dir / "replica-1")  # its replication slot stays on the primary

    with EmbeddedReplica(primary, 1) as replica:
        write(primary, "again")
        wait_for_note(replica.service().owner_url, "again")


def test_a_replica_whose_slot_is_gone_is_made_again(primary: EmbeddedCluster) -> None:
    with EmbeddedReplica(primary, 1):
        pass
    with psycopg.connect(primary.url(), autocommit=True) as conn:  # gone, as past max_slot_wal_keep_size
        conn.execute("SELECT pg_drop_replication_slot(%s)", ["users_api_replica_1"])
    write(primary, "after the slot")

    with EmbeddedReplica(primary, 1) as replica:
        wait_for_note(replica.service().owner_url, "after the slot")
