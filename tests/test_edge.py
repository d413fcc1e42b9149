"""Every request: a trace id in `traceresponse` and in its log lines, and one log line when it ends."""

import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from api.logs import RequestContext, TextFormatter
from tests.helpers import ClientFactory, assert_problem, create, openapi_document

pytestmark = pytest.mark.anyio

TRACERESPONSE = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]")
PARENT_TRACE, PARENT_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def trace_id(response: httpx.Response) -> str:
    found = TRACERESPONSE.fullmatch(response.headers["traceresponse"])
    assert found is not None, response.headers["traceresponse"]
    assert found.group(1) != "0" * 32 and found.group(2) != "0" * 16
    return found.group(1)


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """api's records at debug and up, each given its request as the service's log handler does."""
    caplog.set_level(logging.DEBUG, logger="api")
    context = RequestContext()
    caplog.handler.addFilter(context)
    yield caplog
    caplog.handler.removeFilter(context)


async def test_every_answer_carries_a_trace_id_of_its_own(client_factory: ClientFactory) -> None:
    async with client_factory() as client:
        answers = [
            await client.get("/users/1"),  # 404 from the route
            await client.get("/nowhere"),  # no route
            await client.get("/users/x"),  # 422
            await client.put("/users"),  # 405
            await client.post("/users", content=b"x" * 70_000, headers={"content-type": "application/json"}),  # 413
            await client.get("/health"),
        ]

    assert [answer.status_code for answer in answers] == [404, 404, 422, 405, 413, 200]
    assert len({trace_id(answer) for answer in answers}) == len(answers)


async def test_an_incoming_traceparent_names_the_trace(client: httpx.AsyncClient) -> None:
    parent = f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"

    response = await client.get("/health", headers={"traceparent": parent})

    assert trace_id(response) == PARENT_TRACE
    assert PARENT_SPAN not in response.headers["traceresponse"], "this request's span is a child, not the parent"


@pytest.mark.parametrize(
    "traceparent",
    [f"00-{'0' * 32}-{PARENT_SPAN}-01", f"00-{PARENT_TRACE}-{PARENT_SPAN}", "garbage", f"zz-{PARENT_TRACE}-x-01"],
)
async def test_a_malformed_traceparent_starts_a_new_trace(client: httpx.AsyncClient, traceparent: str) -> None:
    response = await client.get("/health", headers={"traceparent": traceparent})

    assert trace_id(response) != PARENT_TRACE


async def test_one_line_per_request_with_its_route_status_duration_and_trace_id(
    client: httpx.AsyncClient, logged: pytest.LogCaptureFixture
) -> None:
    user = await create(client, "private.person@example.com", "Private Person")
    response = await client.get(f"/users/{user['id']}")

    lines = [record for record in logged.records if record.name == "api.requests"]
    assert [(line.method, line.route, line.status) for line in lines] == [  # type: ignore[attr-defined]
        ("POST", "/users", 201),
        ("GET", "/users/{user_id}", 200),
    ]
    assert all(line.levelno == logging.INFO and line.duration_ms > 0 for line in lines)  # type: ignore[attr-defined]
    assert lines[1].trace_id == trace_id(response)  # type: ignore[attr-defined]
    assert lines[1].getMessage().startswith("GET /users/{user_id} 200 ")
    text = "\n".join(TextFormatter().format(record) for record in logged.records)
    assert "private.person@example.com" not in text and "Private Person" not in text
    assert f"/users/{user['id']}" not in text, "route templates, never paths: ids, emails and cardinality stay out"


async def test_probes_and_scrapes_are_logged_at_debug(
    client: httpx.AsyncClient, logged: pytest.LogCaptureFixture
) -> None:
    await client.get("/health")
    await client.get("/metrics")

    assert [record.levelno for record in logged.records if record.name == "api.requests"] == [logging.DEBUG] * 2


async def test_an_unexpected_error_is_logged_and_answered_with_the_request_trace_id(
    client_factory: ClientFactory, logged: pytest.LogCaptureFixture
) -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    async with client_factory(routes={"/broken": broken}, raise_app_exceptions=False) as client:
        response = await client.get("/broken")

    assert_problem(response, 500)
    error = next(record for record in logged.records if record.levelno == logging.ERROR)
    assert error.getMessage() == "unexpected error answering GET /broken"
    assert error.exc_info is not None and "a bug" in str(error.exc_info[1])
    assert error.trace_id == trace_id(response)  # type: ignore[attr-defined]
    line = next(record for record in logged.records if record.name == "api.requests")
    assert line.status == 500 and line.trace_id == trace_id(response)  # type: ignore[attr-defined]


def test_text_lines_name_the_request_they_are_about() -> None:
    record = logging.LogRecord("api.problems", logging.WARNING, __file__, 1, "database unavailable: %s", ("x",), None)
    record.trace_id, record.request = PARENT_TRACE, "GET /users/{user_id}"

    assert TextFormatter().format(record) == (
        f"WARNING:  database unavailable: x (GET /users/{{user_id}}, trace_id={PARENT_TRACE})"
    )


def test_the_openapi_document_lists_traceresponse_on_every_response() -> None:
    responses = [
        response
        for path in openapi_document()["paths"].values()
        for operation in path.values()
        for response in operation["responses"].values()
    ]

    assert responses and all("traceresponse" in response["headers"] for response in responses)
    pattern = responses[0]["headers"]["traceresponse"]["schema"]["pattern"]
    assert re.fullmatch(pattern, f"00-{PARENT_TRACE}-{PARENT_SPAN}-01")
