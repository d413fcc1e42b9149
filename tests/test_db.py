"""The pool: opened and closed by the lifespan, one connection per request, bounded waits."""

import logging
import os
import resource

import anyio
import httpx
import psycopg
import pytest
from fastapi.responses import StreamingResponse

from api.db import Db, close_pool, open_pool
from api.ops.cluster import Cluster, find_available_port
from api.queries import SQL
from tests.helpers import APP, ClientFactory, assert_problem, create, make_settings, pool_kept_busy

pytestmark = pytest.mark.anyio


def users_api_connections(postgresql: psycopg.Connection) -> int:
    row = postgresql.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'users-api'").fetchone()
    postgresql.commit()
    assert row is not None
    return int(row[0])


async def test_the_lifespan_opens_the_pool_and_closes_it(
    client_factory: ClientFactory, postgresql: psycopg.Connection
) -> None:
    async with client_factory(pool_min_size=3, pool_max_size=3) as client:
        assert (await client.get("/users")).status_code == 200
        assert users_api_connections(postgresql) == 3

    assert users_api_connections(postgresql) == 0


async def test_the_api_under_test_connects_as_the_app_role(client: object, postgresql: psycopg.Connection) -> None:
    # The `client` fixture every API test uses: its pool logs in as the suite's app role, never the owner.
    rows = postgresql.execute(
        "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'users-api'"
    ).fetchall()
    postgresql.commit()

    assert rows == [(APP.name,)]


async def test_the_connection_is_back_in_the_pool_before_the_response_is_sent(client_factory: ClientFactory) -> None:
    async def idle_while_sending(db: Db) -> StreamingResponse:
        await db.fetchval(SQL.ping)

        async def body() -> object:
            yield str(db.pool.get_idle_size()).encode()  # read while the response is being sent

        return StreamingResponse(body())  # type: ignore[arg-type]

    routes = {"/idle-while-sending": idle_while_sending}
    async with client_factory(pool_min_size=1, pool_max_size=1, routes=routes) as client:
        assert (await client.get("/idle-while-sending")).text == "1"


async def test_an_exhausted_pool_is_a_503_with_retry_after(
    client_factory: ClientFactory, postgresql: psycopg.Connection
) -> None:
    async with client_factory(pool_min_size=1, pool_max_size=1, pool_acquire_timeout=0.2) as client:
        user = await create(client, "lock@example.com", "L")
        async with pool_kept_busy(client, postgresql, user["id"]) as patched:
            response = await client.get(f"/users/{user['id']}")

        assert_problem(response, 503)
        assert response.headers["retry-after"] == "1"
        assert patched[0].status_code == 200


async def test_a_query_that_fails_gives_its_connection_back(client_factory: ClientFactory) -> None:
    async with client_factory(pool_min_size=1, pool_max_size=1, pool_acquire_timeout=0.2) as client:
        await create(client, "taken@example.com", "T")
        other = await create(client, "other@example.com", "O")
        conflicts = [await client.patch(f"/users/{other['id']}", json={"email": "taken@example.com"}) for _ in range(3)]
        fetched = await client.get(f"/users/{other['id']}")

    assert [response.status_code for response in conflicts] == [409] * 3
    assert fetched.status_code == 200, "the one connection and its slot in the queue came back each time"


async def test_a_query_over_the_command_timeout_is_a_503(
    client_factory: ClientFactory, postgresql: psycopg.Connection
) -> None:
    async with client_factory(command_timeout=0.3) as client:
        user = await create(client, "slow@example.com", "S")
        postgresql.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user["id"],))

        response = await client.patch(f"/users/{user['id']}", json={"name": "Never"})
        postgresql.rollback()

        assert_problem(response, 503)
        assert "retry-after" in response.headers
        assert (await client.get(f"/users/{user['id']}")).json()["name"] == "S"


async def test_an_unreachable_database_is_a_503_not_a_500(client_factory: ClientFactory) -> None:
    url = f"postgresql://nobody:nothing@127.0.0.1:{find_available_port()}/none"
    async with client_factory(database_url=url, pool_min_size=0) as client:
        response = await client.get("/users/1")

    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert "127.0.0.1" not in response.text


# A login that takes 2 s for the API's connections (an event trigger on login, PostgreSQL 17 and later).
SLOW_LOGIN = """
CREATE FUNCTION slow_login() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = 'users-api' THEN
        PERFORM pg_sleep(2);
    END IF;
END $$;
CREATE EVENT TRIGGER slow_login ON login EXECUTE FUNCTION slow_login();
"""


async def test_a_connection_ended_by_the_server_while_it_logs_in_is_a_503(
    client_factory: ClientFactory, postgresql: psycopg.Connection, cluster: Cluster
) -> None:
    # What a server shutting down or restarting does to a connection that is opening: a FATAL 57P01
    # (asyncpg's AdminShutdownError) before the statement is ever sent.
    if postgresql.info.server_version < 170000:
        pytest.skip("login event triggers, which hold a login up here, came with PostgreSQL 17")
    postgresql.execute(SLOW_LOGIN)
    postgresql.commit()
    answers: list[httpx.Response] = []
    ended: list[tuple[bool]] = []

    async def get() -> None:
        answers.append(await client.get("/users/1"))

    async with client_factory(pool_min_size=0) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(get)
        for _ in range(100):  # 5 s at most
            await anyio.sleep(0.05)
            ended = await anyio.to_thread.run_sync(end_logins, cluster.url())
            if ended:
                break

    assert ended == [(True,)], "a users-api connection was seen logging in, and ended"
    assert_problem(answers[0], 503)
    assert answers[0].headers["retry-after"] == "1"


async def test_a_value_the_database_refuses_is_a_422_that_stores_nothing(
    client_factory: ClientFactory, postgresql: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # The API checks what the CHECK constraints hold, so this takes a route that skips the API's checks.
    async def unchecked(db: Db) -> None:
        await db.fetchrow(SQL.create_user, "long@example.com", "n" * 201)  # users_name_length_check: 200

    async with client_factory(routes={"/unchecked": unchecked}) as client:
        response = await client.get("/unchecked")

    assert assert_problem(response, 422)["detail"] == "a value was refused by the database; nothing was stored"
    stored = postgresql.execute("SELECT count(*) FROM users").fetchone()
    postgresql.commit()
    assert stored == (0,)
    refused = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert len(refused) == 1 and refused[0].startswith("database refused a value: CheckViolationError: ")


def end_logins(admin_url: str) -> list[tuple[bool]]:
    """pg_terminate_backend() of every users-api connection held up in its login trigger."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'users-api' AND wait_event = 'PgSleep'"
        ).fetchall()


async def test_closing_waits_a_bounded_time_for_busy_connections(
    database_url: str, postgresql: psycopg.Connection
) -> None:
    pool = await open_pool(make_settings(database_url, pool_min_size=1, pool_max_size=1))
    await pool.acquire()  # a request that never finishes
    assert users_api_connections(postgresql) == 1

    with anyio.fail_after(5):
        await close_pool(pool, grace=0.2)

    assert pool.is_closing()
    await anyio.sleep(0.1)  # the server notices the closed socket
    assert users_api_connections(postgresql) == 0


async def test_without_the_reset_query_an_open_transaction_is_still_rolled_back(
    database_url: str, postgresql: psycopg.Connection
) -> None:
    pool = await open_pool(make_settings(database_url, pool_min_size=1, pool_max_size=1))
    try:
        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO users (email, name) VALUES ('left@example.com', 'Left open')")
        await pool.release(conn)

        async with pool.acquire() as again:
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await pool.close()


async def test_out_of_file_descriptors_is_a_503_that_does_not_blame_the_database(
    client_factory: ClientFactory, postgresql: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_factory(pool_min_size=1, pool_max_size=2) as client:
        user = await create(client, "fd@example.com")
        async with pool_kept_busy(client, postgresql, user["id"]):  # the next request needs a new connection
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            lowest_free = os.open(os.devnull, os.O_RDONLY)  # a new descriptor takes the lowest free number
            os.close(lowest_free)
            resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # none can be opened now
            try:
                response = await client.get(f"/users/{user['id']}")
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        after = await client.get(f"/users/{user['id']}")

    body = assert_problem(response, 503)
    assert "retry" in body["detail"] and "database is unavailable" not in body["detail"]
    assert response.headers["retry-after"] == "1"
    assert "no file descriptor left" in caplog.text and "database unavailable" not in caplog.text
    assert after.status_code == 200, "served again once descriptors are free"
