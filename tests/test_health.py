"""/health never touches the database; /ready does, within its timeout."""

import httpx
import psycopg
import pytest

from api.ops.cluster import find_available_port
from tests.helpers import ClientFactory, assert_problem, create, pool_kept_busy

pytestmark = pytest.mark.anyio


async def test_health_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_is_200_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_without_a_database_health_is_200_and_ready_is_503(client_factory: ClientFactory) -> None:
    url = f"postgresql://nobody:nothing@127.0.0.1:{find_available_port()}/none"
    async with client_factory(database_url=url, pool_min_size=0, ready_timeout=0.5) as client:
        health = await client.get("/health")
        ready = await client.get("/ready")

    assert health.status_code == 200
    assert_problem(ready, 503)


async def test_ready_is_503_when_no_connection_frees_up_in_time(
    client_factory: ClientFactory, postgresql: psycopg.Connection
) -> None:
    async with client_factory(pool_min_size=1, pool_max_size=1, ready_timeout=0.3) as client:
        user = await create(client, "busy@example.com", "B")
        async with pool_kept_busy(client, postgresql, user["id"]):
            ready = await client.get("/ready")
        again = await client.get("/ready")

    assert_problem(ready, 503)
    assert again.status_code == 200
