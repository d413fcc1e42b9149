"""Reads on hot standbys (api/replicas.py): the Consistency-Token keeps a client's writes in its reads, a standby
that dies or is promoted stops taking reads without a client seeing an error, and it takes them again once back."""

import asyncio
import os
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import asyncpg
import httpx
import pytest

from api.db import Database, Unavailable
from api.ops import migrator
from api.ops.cluster import EmbeddedCluster, find_available_port
from api.ops.processes import alive
from api.ops.standby import EmbeddedReplica
from api.replicas import PRIMARY_ONLY, TURN_SECONDS, Replica, Replicas, lag_seconds, lsn_of, replica_name, token_of
from tests.helpers import ClientFactory, assert_problem, create, sample, scrape

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 15.0  # far above what streaming or a standby's restart takes here; only a broken one comes near it
REPLICA_STATEMENTS = sample("users_api_db_statements_total", db_role="replica")
PRIMARY_STATEMENTS = sample("users_api_db_statements_total", db_role="primary")
ON_PRIMARY = {
    reason: sample("users_api_reads_on_primary_total", reason=reason)
    for reason in ("not_caught_up", "none_usable", "replica_failed")
}


def test_a_token_carries_the_position_it_was_made_of() -> None:
    for lsn in (0, 1, 0x16B3748, PRIMARY_ONLY):
        assert lsn_of(token_of(lsn)) == lsn
    assert token_of(0x16B3748) == "100000000016b3748"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "16B3748",
        "0/16B3748",
        "116b3748",
        "100000000016B3748",
        "200000000016b3748",
        "1.00000000016b3748",
        "100000000016b37481",
    ],
)
def test_a_token_this_service_did_not_write_is_none(token: str) -> None:
    assert lsn_of(token) is None


def test_the_lag_is_how_long_ago_the_primary_was_last_at_a_position_the_standby_has_replayed() -> None:
    positions = deque([(10.0, 100), (10.1, 200), (10.2, 300)])

    assert lag_seconds(positions, 300, now=10.25) == 0.0, "caught up"
    assert lag_seconds(positions, 250, now=10.25) == pytest.approx(0.15), "has what the primary had at 10.1"
    assert lag_seconds(positions, 150, now=10.25) == pytest.approx(0.25)
    assert lag_seconds(positions, 50, now=10.25) is None, "behind every position kept: not known"
    assert lag_seconds(deque(), 50, now=10.25) is None, "nothing measured yet"


def standbys(*names: str) -> tuple[Replicas, list[Replica]]:
    """Standbys whose databases are stand-ins, their names as strings: choosing one touches none of them."""
    members = [Replica(name, cast(Database, f"{name}'s")) for name in names]
    for replica in members:
        replica.why = None
    return Replicas(cast(Database, "primary's"), members, wait=0, max_lag=1, metered=False), members


@pytest.mark.parametrize(
    ("error", "skipped"),
    [
        (asyncpg.SerializationError("canceling statement due to conflict with recovery"), False),
        (asyncpg.UndefinedTableError('relation "users" does not exist'), False),
        (Unavailable("pool_timeout", "no connection freed up within 2s"), False),
        (Unavailable("database_unreachable", "ConnectionRefusedError"), True),
    ],
    ids=["conflict with recovery", "schema not replayed", "own pool full", "unreachable"],
)
async def test_a_read_a_standby_fails_is_answered_elsewhere_and_only_a_standby_down_is_skipped(
    error: Exception, skipped: bool
) -> None:
    replicas, (only,) = standbys("only")

    async def where(db: Database) -> str:
        if cast(str, db) == "only's":
            raise error
        return cast(str, db)

    answered = await replicas.read(where, 0)

    assert answered == "primary's"
    assert (only.why is not None) == skipped


async def test_a_worker_that_has_not_measured_a_lag_yet_reads_from_no_standby() -> None:
    replicas, (behind,) = standbys("behind")
    replicas.positions.append((time.monotonic(), 9_999_999_000))  # the primary's first position, far ahead
    replicas.primary_seen = time.monotonic()
    behind.reachable = behind.in_recovery = True
    behind.replayed = 1_000

    replicas._judge(behind)

    assert behind.why is not None and "not known" in behind.why


async def test_coalesced_reads_take_the_standbys_in_turns_and_the_others_read_by_read() -> None:
    replicas, _ = standbys("first", "second")

    async def where(db: Database) -> str:
        return cast(str, db)

    turns = []
    for _ in range(40):
        together = {await replicas.read(where, 0, coalesced=True) for _ in range(5)}  # coalesced reads arriving at once
        turns.append(together)
        await anyio.sleep(TURN_SECONDS / 2)
    each = [await replicas.read(where, 0) for _ in range(4)]  # reads run alone

    assert sum(len(together) == 1 for together in turns) >= 30, "coalesced reads at once go to one standby"
    assert {"first's", "second's"} == set().union(*turns), "over time, to both"
    assert each in (["first's", "second's"] * 2, ["second's", "first's"] * 2), "reads run alone: read by read"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("postgresql://app:s3cret@10.0.0.7:5433/users_api", "10.0.0.7:5433"),
        ("postgresql://app:s3cret@replica1/users_api", "replica1:5432"),
        ("postgresql://app:s3cret@/users_api?host=10.0.0.7&port=5433", "replica-2"),
        ("postgresql:///users_api?host=replica1&user=app&password=s3cret", "replica-2"),
    ],
)
def test_a_standby_is_named_without_its_user_or_password(url: str, name: str) -> None:
    assert replica_name(url, 2) == name


async def test_a_malformed_token_is_refused_as_a_problem(client: httpx.AsyncClient) -> None:
    user = await create(client, "token@example.com")

    for path in (f"/users/{user['id']}", "/users", "/users?email=token@example.com"):
        problem = assert_problem(await client.get(path, headers={"Consistency-Token": "0/16B3748"}), 422)
        assert problem["errors"][0]["loc"] == ["header", "Consistency-Token"]


async def test_without_standbys_a_token_is_checked_and_writes_carry_none(client: httpx.AsyncClient) -> None:
    made = await client.post("/users", json={"email": "alone@example.com", "name": "Alone"})
    read = await client.get(f"/users/{made.json()['id']}", headers={"Consistency-Token": token_of(2**40)})

    assert made.status_code == 201 and "consistency-token" not in made.headers
    assert read.status_code == 200, "everything is on the primary: any token is satisfied"


async def test_a_standby_that_cannot_be_reached_leaves_reads_to_the_primary(client_factory: ClientFactory) -> None:
    unreachable = "postgresql://users_api_app@127.0.0.1:1/users_api"
    async with client_factory(database_replica_urls=unreachable) as client:
        made = await client.post("/users", json={"email": "primary@example.com", "name": "Primary"})
        read = await client.get(
            f"/users/{made.json()['id']}", headers={"Consistency-Token": made.headers["consistency-token"]}
        )
        figures = await scrape(client)

    assert made.status_code == 201 and lsn_of(made.headers["consistency-token"]) is not None
    assert read.status_code == 200
    assert figures[sample("users_api_replica_usable", replica="127.0.0.1:1")] == 0
    assert figures[sample("users_api_reads_on_primary_total", reason="none_usable")] >= 1


# With embedded servers of their own: a primary, migrated, and a standby streaming from it.


@pytest.fixture
def primary(scratch_pgdata: Path) -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(scratch_pgdata, find_available_port(), durable=False) as server:
        found = server.service()
        migrator.apply(found.owner_url, migrator.role_of(found.app_url))
        yield server


@asynccontextmanager
async def served(
    client_factory: ClientFactory, primary: EmbeddedCluster, replica: EmbeddedReplica, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings["database_replica_urls"] = replica.service().app_url
    async with client_factory(database_url=primary.service().app_url, **settings) as client:
        yield client


async def statements_on(client: httpx.AsyncClient) -> tuple[float, float]:
    """Statements sent so far: to the primary, to the standbys (the service's polls of them not counted)."""
    figures = await scrape(client)
    return figures[PRIMARY_STATEMENTS], figures[REPLICA_STATEMENTS]


async def eventually(holds: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until `holds()`; fail the test after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not await holds():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT_SECONDS:g}s"
        await anyio.sleep(0.02)


async def reads_on_primary(client: httpx.AsyncClient) -> dict[str, float]:
    figures = await scrape(client)
    return {reason: figures.get(name, 0.0) for reason, name in ON_PRIMARY.items()}


@pytest.mark.slow
async def test_a_token_reads_its_own_write_where_the_standby_is_behind(
    client_factory: ClientFactory, primary: EmbeddedCluster
) -> None:
    with EmbeddedReplica(primary, 1, apply_delay="300ms") as replica:
        async with served(client_factory, primary, replica) as client:
            user = await create(client, "behind@example.com")
            await anyio.sleep(0.5)  # the standby has the user by now
            path = f"/users/{user['id']}"
            before, on_primary = await statements_on(client), await reads_on_primary(client)
            stale = 0
            for pair in range(20):  # no token: the standby answers, 300 ms behind
                await client.patch(path, json={"name": f"untokened {pair}"})
                stale += (await client.get(path)).json()["name"] != f"untokened {pair}"
            missed = 0
            for pair in range(200):
                written = await client.patch(path, json={"name": f"tokened {pair}"})
                read = await client.get(path, headers={"Consistency-Token": written.headers["consistency-token"]})
                missed += read.json()["name"] != f"tokened {pair}"
            after, on_primary_after = await statements_on(client), await reads_on_primary(client)

    assert missed == 0, f"{missed} of 200 reads with a token missed their write"
    assert stale >= 10, f"only {stale} of 20 reads without a token were stale: does the standby serve reads?"
    assert after[1] - before[1] >= 20, "the reads without a token went to the standby"
    assert on_primary_after["not_caught_up"] - on_primary["not_caught_up"] == 200, "those with one, to the primary"


@pytest.mark.slow
async def test_a_token_is_served_by_the_standby_once_it_has_replayed_that_far(
    client_factory: ClientFactory, primary: EmbeddedCluster
) -> None:
    with EmbeddedReplica(primary, 1) as replica:
        async with served(client_factory, primary, replica, replica_wait=1.0) as client:
            made = await client.post("/users", json={"email": "caught.up@example.com", "name": "Caught Up"})
            before = await reads_on_primary(client)
            read = await client.get(
                f"/users/{made.json()['id']}", headers={"Consistency-Token": made.headers["consistency-token"]}
            )
            after = await reads_on_primary(client)

    assert read.status_code == 200
    assert after == before, "read on the standby, which had replayed the write or did within REPLICA_WAIT"


@pytest.mark.slow
async def test_a_standby_killed_under_load_costs_no_read_and_takes_reads_again_once_back(
    client_factory: ClientFactory, primary: EmbeddedCluster
) -> None:
    with EmbeddedReplica(primary, 1) as replica:
        async with served(client_factory, primary, replica) as client:
            ids = [(await create(client, f"load{n}@example.com"))["id"] for n in range(20)]
            await anyio.sleep(0.3)
            statuses: list[int] = []
            stop = asyncio.Event()

            async def reader(offset: int) -> None:
                while not stop.is_set():
                    statuses.append((await client.get(f"/users/{ids[(len(statuses) + offset) % 20]}")).status_code)
                    statuses.append((await client.get("/users?limit=5")).status_code)

            readers = [asyncio.create_task(reader(n)) for n in range(8)]
            await anyio.sleep(0.5)
            killed = replica.postmaster_pid()
            assert killed is not None
            os.kill(killed, signal.SIGKILL)
            await eventually(lambda: anyio.to_thread.run_sync(lambda: not alive(killed)), "the standby's end")
            await anyio.sleep(0.5)  # reads on, with the standby down
            down = await statements_on(client)
            await anyio.sleep(0.3)
            still_down = await statements_on(client)
            await anyio.to_thread.run_sync(replica.start)

            async def sent_to_the_standby() -> bool:
                return (await statements_on(client))[1] > still_down[1]

            await eventually(sent_to_the_standby, "reads back on the standby")
            back, on_primary = await statements_on(client), await reads_on_primary(client)
            await anyio.sleep(0.5)
            later, on_primary_later = await statements_on(client), await reads_on_primary(client)
            stop.set()
            await asyncio.gather(*readers)

    assert len(statuses) > 100 and set(statuses) == {200}, f"answers: {sorted(set(statuses))} of {len(statuses)}"
    assert still_down[1] == down[1], "nothing sent to the standby while it was down"
    assert later[1] - back[1] >= 20, "reads went back to the standby once it was up"
    assert on_primary_later == on_primary, "and no longer to the primary"


@pytest.mark.slow
async def test_a_standby_behind_the_primarys_migrations_leaves_the_read_to_the_primary(
    client_factory: ClientFactory, scratch_pgdata: Path
) -> None:
    # The standby replays 2 s late and may be 10 s behind: the migrations reach the primary while the standby
    # takes reads, and reach it 2 s later.
    with (
        EmbeddedCluster(scratch_pgdata, find_available_port(), durable=False) as server,
        EmbeddedReplica(server, 1, apply_delay="2s") as replica,
    ):
        found = server.service()
        async with served(client_factory, server, replica, replica_max_lag=10) as client:

            async def usable() -> bool:
                return (await scrape(client))[
                    sample("users_api_replica_usable", replica=replica_name(replica.service().app_url, 1))
                ] == 1

            await eventually(usable, "the standby takes reads")
            migrator.apply(found.owner_url, migrator.role_of(found.app_url))
            before = await reads_on_primary(client)
            made = await client.post("/users", json={"email": "early@example.com", "name": "Early"})
            read = await client.get(f"/users/{made.json()['id']}")
            listed = await client.get("/users")
            after = await reads_on_primary(client)

    assert (made.status_code, read.status_code, listed.status_code) == (201, 200, 200)
    assert after["replica_failed"] - before["replica_failed"] == 2, "both reads tried the standby first"


@pytest.mark.slow
async def test_a_promoted_standby_takes_no_more_reads(client_factory: ClientFactory, primary: EmbeddedCluster) -> None:
    with EmbeddedReplica(primary, 1) as replica:
        async with served(client_factory, primary, replica) as client:
            user = await create(client, "promoted@example.com")
            await anyio.sleep(0.3)
            await client.get(f"/users/{user['id']}")
            before = await statements_on(client)
            await anyio.to_thread.run_sync(replica.promote)
            await anyio.sleep(0.5)  # at least one poll
            polled = await statements_on(client)
            for _ in range(20):
                assert (await client.get(f"/users/{user['id']}")).status_code == 200
            after = await statements_on(client)
            figures = await scrape(client)

    assert before[1] > 0, "the standby took reads while it was one"
    assert after[1] == polled[1], "none of the 20 reads went to the promoted copy"
    assert after[0] - polled[0] >= 20
    assert figures[sample("users_api_replica_usable", replica=replica_name(replica.service().app_url, 1))] == 0
