"""Errors of every kind leave as RFC 9457 problem details, with nothing internal in them."""

import logging

import httpx
import pytest

from api import problems
from api.app import create_app
from api.ops.cluster import find_available_port
from tests.helpers import ClientFactory, assert_problem, make_settings

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


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/users/1", "GET, PATCH, DELETE"),
        ("OPTIONS", "/users/1", "GET, PATCH, DELETE"),
        ("OPTIONS", "/users", "GET, POST"),
        ("DELETE", "/users", "GET, POST"),
        ("POST", "/health", "GET"),
    ],
)
async def test_a_wrong_method_is_a_405_problem_allowing_every_method_of_the_resource(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)

    body = assert_problem(response, 405)
    # RFC 9110: Allow lists every method the resource supports, not those of the first route whose path matched.
    assert response.headers["allow"] == allow
    assert body["detail"] == f"{method} is not allowed on {path}; allowed: {allow}"


async def test_an_unexpected_error_is_a_500_problem_without_internals(client_factory: ClientFactory) -> None:
    async def broken() -> None:
        raise RuntimeError("secret internals: SELECT password FROM vault")

    async with client_factory(routes={"/broken": broken}, raise_app_exceptions=False) as client:
        response = await client.get("/broken")

    assert assert_problem(response, 500)["title"] == "Internal Server Error"
    assert "secret" not in response.text and "SELECT" not in response.text and "Traceback" not in response.text


async def test_an_outage_is_logged_once_a_second_not_once_a_request(
    client_factory: ClientFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(problems, "OUTAGE_LINES", problems.Throttle(seconds=60))
    down = f"postgresql://nobody:nothing@127.0.0.1:{find_available_port()}/none"  # nothing listens there

    async with client_factory(database_url=down, pool_min_size=0) as client:
        answers = [await client.get("/users/1") for _ in range(20)]
        problems.OUTAGE_LINES.last -= 60  # a minute on
        answers.append(await client.get("/users/1"))

    assert {answer.status_code for answer in answers} == {503}
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("database unavailable: ConnectionRefusedError: ")
    assert warnings[1].endswith("(19 more since the last such line)")


def test_no_handler_is_registered_for_a_built_in_exception() -> None:
    # The database's failures reach the HTTP layer as api.db's own errors, not as OSError or TimeoutError.
    app = create_app(make_settings("postgresql://unused@127.0.0.1:1/none"))
    registered = [key for key in app.exception_handlers if isinstance(key, type)]

    assert registered and all(error.__module__ != "builtins" for error in registered), registered


async def test_a_route_that_raises_a_built_in_error_itself_is_a_500_not_a_503(client_factory: ClientFactory) -> None:
    async def broken() -> None:
        raise ConnectionRefusedError(111, "Connection refused")  # not the database: a bug of the route's

    async with client_factory(routes={"/broken": broken}, raise_app_exceptions=False) as client:
        response = await client.get("/broken")

    assert_problem(response, 500)
