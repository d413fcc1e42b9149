"""Errors of every kind leave as RFC 9457 problem details, with nothing internal in them."""

import httpx
import pytest
from fastapi import FastAPI

from support import serve

pytestmark = pytest.mark.anyio


async def test_an_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
    }


async def test_a_wrong_method_is_a_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/users/1", json={"name": "x"})

    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 405
    # Starlette names only the first route matching the path (GET); it still tells the client to look.
    assert "GET" in response.headers["allow"]


async def test_an_unexpected_error_is_a_500_problem_without_internals(app: FastAPI) -> None:
    async def broken() -> None:
        raise RuntimeError("secret internals: SELECT password FROM vault")

    app.add_api_route("/broken", broken)
    async with serve(app, raise_app_exceptions=False) as client:
        response = await client.get("/broken")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 500 and body["title"] == "Internal Server Error"
    assert "secret" not in response.text and "SELECT" not in response.text and "Traceback" not in response.text
