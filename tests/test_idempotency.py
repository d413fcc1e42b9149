"""POST /users with an Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): a retry is safe."""

from typing import Any, LiteralString

import anyio
import asyncpg
import httpx
import psycopg
import pytest

from tests.helpers import ClientFactory, assert_problem

pytestmark = pytest.mark.anyio

ADA = {"email": "ada@example.com", "name": "Ada Lovelace"}


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def counted(postgresql: psycopg.Connection, query: LiteralString, *params: object) -> int:
    row = postgresql.execute(query, params).fetchone()
    postgresql.commit()
    assert row is not None
    return int(row[0])


def users_with(postgresql: psycopg.Connection, email: str) -> int:
    return counted(postgresql, "SELECT count(*) FROM users WHERE lower(email) = lower(%s)", email)


def kept_keys(postgresql: psycopg.Connection) -> int:
    return counted(postgresql, "SELECT count(*) FROM idempotency_keys")


async def test_the_same_key_and_body_again_replays_the_first_201(
    client: httpx.AsyncClient, postgresql: psycopg.Connection
) -> None:
    first = await client.post("/users", json=ADA, headers=keyed("k-1"))
    user_id = first.json()["id"]
    await client.patch(f"/users/{user_id}", json={"name": "Changed since"})
    again = await client.post("/users", json={"name": ADA["name"], "email": ADA["email"]}, headers=keyed('"k-1"'))

    assert first.status_code == again.status_code == 201
    assert again.content == first.content, "the first answer, byte for byte, though the user changed since"
    for header in ("location", "content-location", "etag"):
        assert again.headers[header] == first.headers[header]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert users_with(postgresql, ADA["email"]) == 1


async def test_the_same_key_with_another_body_is_422(client: httpx.AsyncClient, postgresql: psycopg.Connection) -> None:
    await client.post("/users", json=ADA, headers=keyed("k-2"))

    other = await client.post("/users", json={**ADA, "name": "Someone Else"}, headers=keyed("k-2"))

    body = assert_problem(other, 422)
    assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert users_with(postgresql, ADA["email"]) == 1


async def test_a_key_whose_first_request_is_in_flight_is_409(
    client: httpx.AsyncClient, postgresql: psycopg.Connection
) -> None:
    # The first request holds the key's lock until its transaction ends: here, a session of the test's.
    # The lock is on the principal ('' with no token), a space, and the key.
    postgresql.execute("SELECT pg_advisory_xact_lock(hashtextextended(' ' || 'k-3', 0))")

    response = await client.post("/users", json=ADA, headers=keyed("k-3"))
    postgresql.rollback()
    after = await client.post("/users", json=ADA, headers=keyed("k-3"))

    assert "being answered" in assert_problem(response, 409)["detail"]
    assert response.headers["retry-after"] == "1"
    assert after.status_code == 201


async def test_a_taken_email_is_409_with_a_key_and_keeps_nothing(
    client: httpx.AsyncClient, postgresql: psycopg.Connection
) -> None:
    await client.post("/users", json=ADA)

    taken = await client.post("/users", json=ADA, headers=keyed("k-4"))

    assert "belongs to another user" in assert_problem(taken, 409)["detail"]
    assert kept_keys(postgresql) == 0


async def test_without_a_key_a_create_is_as_before(client: httpx.AsyncClient, postgresql: psycopg.Connection) -> None:
    response = await client.post("/users", json=ADA)

    assert response.status_code == 201 and "idempotent-replayed" not in response.headers
    assert kept_keys(postgresql) == 0


@pytest.mark.parametrize("key", ["", '""', '"half', " padded", "tab\there", "é", "k" * 256, '"' + "k" * 256 + '"'])
async def test_a_malformed_key_is_422(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post("/users", json=ADA, headers=[(b"idempotency-key", key.encode())])

    assert assert_problem(response, 422)["errors"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_16_concurrent_posts_with_one_key_create_one_user(
    client_factory: ClientFactory, postgresql: psycopg.Connection
) -> None:
    # Each either finds the first request in flight (409) or gets its answer (201, replayed).
    answers: list[httpx.Response] = []
    async with client_factory(pool_max_size=16) as client:

        async def post() -> None:
            answers.append(await client.post("/users", json=ADA, headers=keyed("k-race")))

        async with anyio.create_task_group() as tasks:
            for _ in range(16):
                tasks.start_soon(post)
        retried = await client.post("/users", json=ADA, headers=keyed("k-race"))

    created = [answer for answer in answers if answer.status_code == 201]
    assert created and all(answer.status_code in (201, 409) for answer in answers), [a.text for a in answers]
    assert len({answer.content for answer in [*created, retried]}) == 1
    assert sum("idempotent-replayed" not in answer.headers for answer in created) == 1
    assert users_with(postgresql, ADA["email"]) == 1


async def test_a_key_expires_after_24_hours(client: httpx.AsyncClient, postgresql: psycopg.Connection) -> None:
    first = await client.post("/users", json=ADA, headers=keyed("k-old"))
    postgresql.execute("UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second'")
    postgresql.commit()

    other = await client.post("/users", json={"email": "new@example.com", "name": "New"}, headers=keyed("k-old"))

    assert first.status_code == other.status_code == 201
    assert other.json()["id"] != first.json()["id"]


async def test_expired_keys_are_removed_as_keyed_posts_come(
    client: httpx.AsyncClient, postgresql: psycopg.Connection
) -> None:
    postgresql.execute(
        "INSERT INTO idempotency_keys (idempotency_key, request_sha256, user_id, version, body, created_at)"
        " SELECT 'old-' || n, '\\x00', n, 1, '{}', now() - interval '25 hours' - n * interval '1 second'"
        " FROM generate_series(1, 95) AS n"
    )
    postgresql.commit()

    for n in range(10):
        response = await client.post("/users", json={"email": f"u{n}@example.com", "name": "U"}, headers=keyed(f"k{n}"))
        assert response.status_code == 201

    assert kept_keys(postgresql) == 10, "95 expired keys gone, at most 10 per keyed POST; the 10 new ones kept"


async def test_the_app_role_may_read_insert_and_delete_keys_but_not_update_them(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        rights: dict[str, Any] = {
            right: await conn.fetchval("SELECT has_table_privilege('idempotency_keys', $1)", right)
            for right in ("SELECT", "INSERT", "DELETE", "UPDATE", "TRUNCATE", "REFERENCES", "TRIGGER")
        }
    finally:
        await conn.close()

    assert rights == {
        "SELECT": True, "INSERT": True, "DELETE": True,
        "UPDATE": False, "TRUNCATE": False, "REFERENCES": False, "TRIGGER": False,
    }  # fmt: skip
