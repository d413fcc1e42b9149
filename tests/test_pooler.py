"""Behind a connection pooler that does not keep prepared statements (PgBouncer in transaction mode before 1.21):
what the service makes of the symptom, and that STATEMENT_CACHE_SIZE=0 needs none kept.

No pooler is started here (`make test` installs none): the symptom is made in the one pooled connection's
own session, by preparing the names asyncpg will give its next statements, as a server connection that
another client had prepared them on would hold them.
"""

import logging

import pytest

from api import problems
from api.db import Db
from tests.helpers import ClientFactory, assert_problem

pytestmark = pytest.mark.anyio

# The names asyncpg gives its statements, `__asyncpg_stmt_<hex>__`, counted in one sequence per process: the
# next 64 after the last this session prepared are taken, as a pooled server connection would have them.
TAKE_THE_NEXT_NAMES = """
DO $$
DECLARE
    last bigint;
BEGIN
    SELECT max(('x' || lpad(substring(name FROM '^__asyncpg_stmt_([0-9a-f]+)__$'), 16, '0'))::bit(64)::bigint)
    INTO last
    FROM pg_prepared_statements;
    last := coalesce(last, 0);  -- none prepared: no statement cache
    FOR n IN last + 1 .. last + 64 LOOP
        EXECUTE format('PREPARE %I AS SELECT 1', '__asyncpg_stmt_' || to_hex(n) || '__');
    END LOOP;
END
$$
"""


# What a server connection that another client had prepared the same names on holds: asyncpg's cached
# statements on this session gone (`gone`), or prepared again as another statement with two parameters.
CACHED_STATEMENTS_ELSEWHERE = """
DO $$
DECLARE
    cached record;
BEGIN
    FOR cached IN SELECT name FROM pg_prepared_statements WHERE name LIKE '\\_\\_asyncpg\\_stmt\\_%' LOOP
        EXECUTE format('DEALLOCATE %I', cached.name);
        IF current_setting('users_api_test.how') = 'moved' THEN
            EXECUTE format('PREPARE %I AS SELECT $1::int, $2::int', cached.name);
        END IF;
    END LOOP;
END
$$
"""


async def names_taken(db: Db) -> None:
    async def take(conn: object) -> None:
        await conn.fetchval("SELECT 1")  # type: ignore[attr-defined]  # one prepared by asyncpg, to count from
        await conn.execute(TAKE_THE_NEXT_NAMES)  # type: ignore[attr-defined]  # simple protocol: nothing prepared

    await db.run(take, read=True)


async def named_statements(db: Db) -> int:
    """How many statements asyncpg prepared by name on the one pooled connection's session."""
    return int(await db.fetchval("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '\\_\\_asyncpg%'"))


async def test_prepared_statements_lost_by_a_pooler_are_a_503_and_an_error_that_names_the_fix(
    client_factory: ClientFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(problems, "POOLER_LINES", problems.Throttle(seconds=60))  # no other test's line holds it
    async with client_factory(pool_min_size=1, pool_max_size=1, routes={"/names-taken": names_taken}) as client:
        assert (await client.get("/names-taken")).status_code == 200
        response = await client.get("/users/1")
        ready = await client.get("/ready")

    problem = assert_problem(response, 503)
    assert problem["detail"] == "the service cannot run statements through its connection pooler; retry later"
    assert "retry-after" in response.headers
    assert assert_problem(ready, 503)["detail"] == problem["detail"], "a load balancer takes the instance out"
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert any("STATEMENT_CACHE_SIZE=0" in line and "max_prepared_statements" in line for line in errors), errors


@pytest.mark.parametrize("how", ["gone", "moved"])
async def test_a_cached_statement_gone_or_another_under_its_name_is_a_503_not_a_500(
    client_factory: ClientFactory, how: str
) -> None:
    async def elsewhere(db: Db) -> None:
        async def replace(conn: object) -> None:
            await conn.fetchval("SELECT set_config('users_api_test.how', $1, false)", how)  # type: ignore[attr-defined]
            await conn.execute(CACHED_STATEMENTS_ELSEWHERE)  # type: ignore[attr-defined]

        await db.run(replace, read=True)

    async with client_factory(pool_min_size=1, pool_max_size=1, routes={"/elsewhere": elsewhere}) as client:
        assert (await client.get("/users/1")).status_code == 404  # get_user.sql prepared and cached
        assert (await client.get("/elsewhere")).status_code == 200
        response = await client.get("/users/1")

    assert assert_problem(response, 503)["detail"] == (
        "the service cannot run statements through its connection pooler; retry later"
    )


@pytest.mark.parametrize(("cache_size", "named"), [(0, False), (100, True)])
async def test_without_a_statement_cache_no_statement_is_prepared_by_a_name_that_could_meet_another(
    client_factory: ClientFactory, cache_size: int, named: bool
) -> None:
    routes = {"/named-statements": named_statements}
    async with client_factory(
        pool_min_size=1, pool_max_size=1, statement_cache_size=cache_size, routes=routes
    ) as client:
        assert (await client.get("/users/1")).status_code == 404
        found = (await client.get("/named-statements")).json()

    assert (found > 0) is named
