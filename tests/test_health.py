"""/health never touches the database; /ready does, within its timeout."""

import httpx
import psycopg
import pytest

from api.app import create_app

from support import make_settings, pool_kept_busy, serve

pytestmark = pytest.mark.anyio


async def test_health_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_is_200_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_without_a_database_health_is_200_and_ready_is_503(free_tcp_port: int) -> None:
    url = f"postgresql://nobody:nothing@127.0.0.1:{free_tcp_port}/none"
    app = create_app(make_settings(url, pool_min_size=0, ready_timeout=0.5))
    async with serve(app) as client:
        health = await client.get("/health")
        ready = await client.get("/ready")

    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["status"] == 503


async def test_ready_is_503_when_no_connection_frees_up_in_time(
    database_url: str, postgresql: psycopg.Connection
) -> None:
    app = create_app(make_settings(database_url, pool_min_size=1, pool_max_size=1, ready_timeout=0.3))
    async with serve(app) as client:
        user = (await client.post("/users", json={"email": "busy@example.com", "name": "B"})).json()
        async with pool_kept_busy(client, postgresql, user["id"]):
            ready = await client.get("/ready")
        again = await client.get("/ready")

    assert ready.status_code == 503
    assert again.status_code == 200
