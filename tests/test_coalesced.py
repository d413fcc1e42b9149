"""Coalesced reads: the get-ones (and lookups by email) waiting at once share one statement, and each
request keeps its own answer, errors and metrics."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api import coalesced, metrics
from api.db import Database, lifespan
from api.ops.cluster import Cluster
from api.queries import SQL
from tests.helpers import ClientFactory, assert_problem, create, make_settings, pool_kept_busy, sample, scrape

pytestmark = pytest.mark.anyio
GET_ONE, BY_EMAIL = "get_user", "find_users_by_email"


async def so_far(client: httpx.AsyncClient, read: str) -> tuple[float, float, float]:
    """Statements sent, reads they answered and statements saved for a kind of read, so far."""
    scraped = await scrape(client)
    return (
        scraped.get(sample("users_api_coalesced_batch_size_count", read=read), 0.0),
        scraped.get(sample("users_api_coalesced_batch_size_sum", read=read), 0.0),
        scraped.get(sample("users_api_coalesced_statements_saved_total", read=read), 0.0),
    )


async def grew(client: httpx.AsyncClient, read: str, requests: Callable[[], Awaitable[object]]) -> list[float]:
    before = await so_far(client, read)
    await requests()
    return [after - was for after, was in zip(await so_far(client, read), before, strict=True)]


@pytest.mark.parametrize("coalesce_reads", [True, False])
async def test_concurrent_get_ones_each_get_their_own_answer(
    client_factory: ClientFactory, coalesce_reads: bool
) -> None:
    async with client_factory(coalesce_reads=coalesce_reads) as client:
        users = [await create(client, f"many{n}@example.com") for n in range(20)]
        ids = [user["id"] for user in users] + [user["id"] + 10_000 for user in users[:5]]  # 5 no one has
        asked = [ids[n % len(ids)] for n in range(200)]
        answers: list[httpx.Response] = []

        async def get_all() -> None:
            answers.extend(await asyncio.gather(*(client.get(f"/users/{user_id}") for user_id in asked)))

        statements, reads, saved = await grew(client, GET_ONE, get_all)

    by_id = {user["id"]: user for user in users}
    for user_id, answer in zip(asked, answers, strict=True):
        if user_id in by_id:
            assert (answer.status_code, answer.json()) == (200, by_id[user_id])
            assert answer.headers["etag"] == f'"{user_id}-1"'
        else:
            assert str(user_id) in assert_problem(answer, 404)["detail"]
    if coalesce_reads:
        assert reads == 200 and statements < 200 and saved == 200 - statements, (statements, reads, saved)
    else:
        assert (statements, reads, saved) == (0, 0, 0)


async def test_coalesced_get_ones_keep_their_own_304s(client: httpx.AsyncClient) -> None:
    users = [await create(client, f"tagged{n}@example.com") for n in range(4)]
    kept = {user["id"]: (await client.get(f"/users/{user['id']}")).headers["etag"] for user in users}
    changed = users[0]["id"]
    assert (await client.patch(f"/users/{changed}", json={"name": "Changed"})).status_code == 200

    twice = [(user_id, tag) for user_id, tag in kept.items() for _ in "ab"]
    answers: list[httpx.Response] = []

    async def get_all() -> None:
        answers.extend(
            await asyncio.gather(*(client.get(f"/users/{n}", headers={"If-None-Match": t}) for n, t in twice))
        )

    _, _, saved = await grew(client, GET_ONE, get_all)

    statuses = [answer.status_code for answer in answers]
    assert statuses == [200, 200, 304, 304, 304, 304, 304, 304]
    assert [answer.headers["etag"] for answer in answers[:2]] == [f'"{changed}-2"'] * 2
    assert all(answer.content == b"" for answer in answers[2:])
    assert saved > 0, "they shared statements"


async def test_concurrent_lookups_by_email_each_get_their_own_answer(client: httpx.AsyncClient) -> None:
    ada, bob = await create(client, "ada@example.com"), await create(client, "bob@example.com")
    asked = {
        ("ADA@example.com", 0): [ada],
        ("ada@example.com", ada["id"]): [],  # found, but not after `after`
        ("ada@example.com", ada["id"] - 1): [ada],
        ("bob@example.com", 0): [bob],
        ("nobody@example.com", 0): [],
    }
    queries = [(email, after) for email, after in asked for _ in range(10)]
    answers: list[httpx.Response] = []

    async def look_up_all() -> None:
        answers.extend(
            await asyncio.gather(*(client.get("/users", params={"email": e, "after": a}) for e, a in queries))
        )

    statements, reads, _ = await grew(client, BY_EMAIL, look_up_all)

    assert [(answer.status_code, answer.json()) for answer in answers] == [(200, asked[query]) for query in queries]
    assert reads == 50 and statements < 50


async def test_a_lone_request_is_sent_alone_at_once(client: httpx.AsyncClient) -> None:
    user = await create(client, "alone@example.com")

    async def one_at_a_time() -> None:
        for _ in range(10):
            assert (await client.get(f"/users/{user['id']}")).status_code == 200

    async def looked_up_one_at_a_time() -> None:
        for _ in range(10):
            assert (await client.get("/users", params={"email": "alone@example.com"})).json() == [user]

    # One statement per request: no request waited for another to join it.
    assert await grew(client, GET_ONE, one_at_a_time) == [10, 10, 0]
    assert await grew(client, BY_EMAIL, looked_up_one_at_a_time) == [10, 10, 0]


def waiting_for_the_lock(admin_url: str) -> list[int]:
    """The backends of users-api's statements waiting for a lock now, the longest waiting first."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'users-api' AND wait_event_type = 'Lock' "
            "ORDER BY query_start"
        ).fetchall()
    return [pid for (pid,) in rows]


async def until_waiting(admin_url: str, count: int, *, at_most: bool = False) -> list[int]:
    """The backends waiting for the lock once there are `count` of them (or no more than `count`)."""
    for _ in range(250):  # 5 s at most
        waiting = await asyncio.to_thread(waiting_for_the_lock, admin_url)
        if len(waiting) <= count if at_most else len(waiting) >= count:
            return waiting
        await asyncio.sleep(0.02)
    raise AssertionError(f"the statements waiting for the lock never came to {count}")


async def test_a_failing_batch_fails_its_own_members_alone(
    client_factory: ClientFactory, postgresql: psycopg.Connection, cluster: Cluster
) -> None:
    async with client_factory(raise_app_exceptions=False) as client:
        user = await create(client, "batched@example.com")
        postgresql.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")  # every read waits, in plain sight
        try:
            # The first read goes alone; the two that find it in flight share a statement, which fails.
            first = asyncio.gather(*(client.get(f"/users/{user['id']}") for _ in range(3)))
            _, failing = await until_waiting(cluster.url(), 2)
            second = asyncio.gather(*(client.get(f"/users/{user['id']}") for _ in range(3)))
            await until_waiting(cluster.url(), 3)  # another statement, on another connection
            with psycopg.connect(cluster.url(), autocommit=True) as admin:
                admin.execute("SELECT pg_cancel_backend(%s)", (failing,))
            await until_waiting(cluster.url(), 2, at_most=True)
        finally:
            postgresql.rollback()
        failed, answered = await first, await second

    assert sorted(answer.status_code for answer in failed) == [200, 503, 503]
    for answer in failed:
        if answer.status_code == 503:
            assert_problem(answer, 503)
            assert answer.headers["retry-after"]
    assert [(answer.status_code, answer.json()) for answer in answered] == [(200, user)] * 3


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The pool and its coalesced reads, as the lifespan makes them, without an app around them."""
    async with lifespan(make_settings(database_url))(FastAPI()) as state:
        yield state["database"]


def requested(reads: coalesced.Coalesced, *args: object) -> asyncio.Task[asyncpg.Record | None]:
    """A request's read, as a route makes it: in a task of its own, `read` called when the task runs."""

    async def request() -> asyncpg.Record | None:
        return await reads.read(*args)

    return asyncio.create_task(request())


@asynccontextmanager
async def reads_held_up(
    db: Database, postgresql: psycopg.Connection, ids: list[int]
) -> AsyncIterator[list[asyncio.Task[asyncpg.Record | None]]]:
    """Get-ones of `ids` held up by a lock on users until the block ends: the first alone, the rest in a batch."""
    assert db.users_by_id is not None
    postgresql.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
    try:
        yield [requested(db.users_by_id, user_id) for user_id in ids]
    finally:
        postgresql.rollback()


async def test_a_waiter_that_goes_away_leaves_the_rest_whole(
    database: Database, postgresql: psycopg.Connection, cluster: Cluster
) -> None:
    made = [await database.fetchrow(SQL.create_user, f"left{n}@example.com", "Left") for n in range(4)]
    ids = [row["id"] for row in made if row is not None]
    async with reads_held_up(database, postgresql, ids) as reads:
        await until_waiting(cluster.url(), 2)  # the first alone, the others in one statement
        reads[2].cancel()  # a member of the batch goes away, as when its client does
    async with asyncio.timeout(10):
        answers = await asyncio.gather(*reads, return_exceptions=True)
    in_flight = database.users_by_id.in_flight if database.users_by_id else None

    assert isinstance(answers[2], asyncio.CancelledError)
    kept = [answers[n] for n in (0, 1, 3)]
    assert [json.loads(answer["body"])["id"] for answer in kept] == [ids[0], ids[1], ids[3]]  # type: ignore[index]
    assert in_flight == 0, "the next read alone goes at once again"


async def test_a_waiter_gone_before_its_batch_failed_leaves_the_rest_their_errors(
    database: Database, postgresql: psycopg.Connection, cluster: Cluster
) -> None:
    async with reads_held_up(database, postgresql, [1, 2, 3, 4]) as reads:
        _, batch = await until_waiting(cluster.url(), 2)
        reads[2].cancel()
        await asyncio.sleep(0.05)
        with psycopg.connect(cluster.url(), autocommit=True) as admin:
            admin.execute("SELECT pg_cancel_backend(%s)", (batch,))
        await until_waiting(cluster.url(), 1, at_most=True)
    async with asyncio.timeout(10):
        answers = await asyncio.gather(*reads, return_exceptions=True)
    in_flight = database.users_by_id.in_flight if database.users_by_id else None

    assert answers[0] is None, "the read alone, answered once the lock went: no such user"
    assert isinstance(answers[2], asyncio.CancelledError)
    assert [type(answers[n]).__name__ for n in (1, 3)] == ["Unavailable", "Unavailable"]
    assert in_flight == 0, "the next read alone goes at once again"


async def test_a_batch_that_never_got_a_connection_takes_no_later_read(
    client_factory: ClientFactory, postgresql: psycopg.Connection
) -> None:
    async with client_factory(
        raise_app_exceptions=False, pool_min_size=1, pool_max_size=1, pool_acquire_timeout=0.3
    ) as client:
        user = await create(client, "queued@example.com")
        async with pool_kept_busy(client, postgresql, user["id"]):
            timed_out = await asyncio.gather(*(client.get(f"/users/{user['id']}") for _ in range(3)))
        async with asyncio.timeout(10):
            later = await client.get(f"/users/{user['id']}")

    assert [assert_problem(answer, 503)["detail"] for answer in timed_out] == [
        "all database connections are busy; retry shortly"
    ] * 3
    assert later.status_code == 200


async def test_coalesced_creates_give_one_201_per_email(client_factory: ClientFactory) -> None:
    async with client_factory() as client:
        await create(client, "taken@example.com")
        emails = [f"new{n}@example.com" for n in range(10)] + ["TAKEN@example.com"]
        asked = [(cased, f"{cased} {n}") for email in emails for n, cased in enumerate((email, email.upper()))]
        answers: list[httpx.Response] = []

        async def create_all() -> None:
            answers.extend(
                await asyncio.gather(*(client.post("/users", json={"email": e, "name": n}) for e, n in asked))
            )

        statements, reads, _ = await grew(client, "create_user", create_all)
        stored = {email: (await client.get("/users", params={"email": email})).json() for email in emails[:-1]}

    assert reads == 22 and statements < 22
    # Each email's first request gets the 201, with its own email and name as it sent them; the other a 409.
    assert [answer.status_code for answer in answers] == [201, 409] * 10 + [409, 409]
    for (email, name), answer in zip(asked, answers, strict=True):
        if answer.status_code == 201:
            assert (answer.json()["email"], answer.json()["name"]) == (email, name)
            assert stored[email] == [answer.json()]


@asynccontextmanager
async def users_locked(postgresql: psycopg.Connection) -> AsyncIterator[None]:
    """Every statement on users waits, in plain sight, until the block ends."""
    postgresql.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        postgresql.rollback()


def creating(db: Database, *users: tuple[str, str]) -> list[asyncio.Task[asyncpg.Record | None]]:
    assert db.creates is not None
    return [requested(db.creates, email, name) for email, name in users]


def names_of(answers: list[asyncpg.Record | None]) -> list[str | None]:
    return [json.loads(answer["body"])["name"] if answer is not None else None for answer in answers]


async def test_of_two_creates_with_one_email_in_a_statement_the_first_gets_the_user(
    database: Database, postgresql: psycopg.Connection, cluster: Cluster
) -> None:
    async with users_locked(postgresql):
        creates = creating(
            database, ("first@example.com", "Alone"), ("same@example.com", "A"), ("same@example.com", "B")
        )
        await until_waiting(cluster.url(), 2)  # the first alone, the other two in one statement
    answers = await asyncio.gather(*creates)

    assert names_of(answers) == ["Alone", "A", None]


async def test_two_statements_creating_the_same_emails_in_opposite_orders_do_not_deadlock(
    database: Database, postgresql: psycopg.Connection, cluster: Cluster
) -> None:
    emails = [f"crossed{n:03}@example.com" for n in range(300)]
    async with users_locked(postgresql):
        alone = creating(database, ("alone@example.com", "Alone"))
        await until_waiting(cluster.url(), 1)
        forwards = creating(database, *((email, "Forwards") for email in emails))
        await until_waiting(cluster.url(), 2)
        backwards = creating(database, *((email.upper(), "Backwards") for email in reversed(emails)))
        await until_waiting(cluster.url(), 3)  # both wait for the lock, to run at once when it goes
    async with asyncio.timeout(30):
        answers = await asyncio.gather(*alone, *forwards, *backwards)  # a deadlock would raise here

    created = [answer for answer in answers[1:] if answer is not None]
    assert sorted(json.loads(answer["body"])["email"].lower() for answer in created) == emails


async def test_a_create_whose_client_went_away_before_it_was_sent_is_not_made(
    database_url: str, postgresql: psycopg.Connection, cluster: Cluster
) -> None:
    one_connection = make_settings(database_url, pool_min_size=1, pool_max_size=1)
    async with lifespan(one_connection)(FastAPI()) as state:
        db = state["database"]
        async with users_locked(postgresql):
            alone = creating(db, ("holder@example.com", "Holds the one connection"))
            await until_waiting(cluster.url(), 1)
            batch = creating(db, ("gone@example.com", "Gone"), ("GONE@example.com", "Kept"))
            await asyncio.sleep(0.05)  # the two wait for the connection, their statement not yet sent
            batch[0].cancel()
        answers = await asyncio.gather(*alone, *batch, return_exceptions=True)
        found = await db.fetchval(SQL.find_users_by_email, "gone@example.com", 0)

    assert isinstance(answers[1], asyncio.CancelledError)
    assert names_of([answers[2]]) == ["Kept"]  # type: ignore[list-item]
    assert [user["name"] for user in json.loads(found)] == ["Kept"]


async def test_a_batch_holds_at_most_batch_max_members(
    database: Database, postgresql: psycopg.Connection, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coalesced, "BATCH_MAX", 2)
    made = [await database.fetchrow(SQL.create_user, f"capped{n}@example.com", "Capped") for n in range(6)]
    ids = [row["id"] for row in made if row is not None]
    async with reads_held_up(database, postgresql, ids) as reads:
        await until_waiting(cluster.url(), 4)  # one alone, then statements of 2, 2 and 1 on the pool's 4
    answers = await asyncio.gather(*reads)

    assert [json.loads(answer["body"])["id"] for answer in answers if answer is not None] == ids


async def test_a_value_the_database_refuses_is_the_refusal_of_its_request_alone(
    database: Database, postgresql: psycopg.Connection, cluster: Cluster
) -> None:
    # Past the API's checks (a 400-character email), as a value could be if the two ever disagreed.
    emails = ["fine1@example.com", "fine2@example.com", f"{'x' * 400}@example.com", "fine3@example.com"]
    assert database.creates is not None
    postgresql.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")  # the four wait: one alone, three together
    try:
        creates = [requested(database.creates, email, "Fine") for email in emails]
        await until_waiting(cluster.url(), 2)
    finally:
        postgresql.rollback()
    async with asyncio.timeout(10):
        answers = await asyncio.gather(*creates, return_exceptions=True)

    assert type(answers[2]).__name__ == "Refused"
    assert [json.loads(answers[n]["body"])["email"] for n in (0, 1, 3)] == [emails[n] for n in (0, 1, 3)]  # type: ignore[index]


async def test_a_batch_whose_members_all_went_away_sends_nothing_and_counts_nothing(
    database_url: str, postgresql: psycopg.Connection, cluster: Cluster
) -> None:
    def counted() -> list[float]:
        metrics.publish()
        names = ("users_api_coalesced_batch_size_count", "users_api_coalesced_batch_size_sum")
        return [metrics.REGISTRY.get_sample_value(name, {"read": GET_ONE}) or 0.0 for name in names]

    one_connection = make_settings(database_url, pool_min_size=1, pool_max_size=1)
    async with lifespan(one_connection)(FastAPI()) as state:
        before = counted()
        async with reads_held_up(state["database"], postgresql, [1, 2]) as reads:
            await until_waiting(cluster.url(), 1)  # the first holds the one connection; the second waits for it
            reads[1].cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        reads_by_id = state["database"].users_by_id
        await asyncio.gather(*(reads_by_id.sending if reads_by_id else ()))  # the batch's task, done
        after = counted()  # a batch of none would be a negative count of statements saved: publish() would raise

    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1]  # the read alone, and nothing else
