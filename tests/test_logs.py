"""The service's log lines: a request's line made without a record reads as its record would."""

import io
import json
import logging
from collections.abc import Iterator

import anyio
import pytest

from api import logs
from api.logs import JsonLines, RequestFields, TextFormatter, TickFlushedHandler
from api.ops.logging_config import logging_config

pytestmark = pytest.mark.anyio

FIELDS: RequestFields = ("GET", "/users/{user_id}", 200, 1.25, "4bf92f3577b34da6a3ce929d0e0e4736")


def record_of(fields: RequestFields) -> logging.LogRecord:
    """The record the logging path makes for a request (api/observe.py, when logging is a host's)."""
    method, route, status, milliseconds, _ = fields
    record = logging.LogRecord("users_api.requests", logging.INFO, __file__, 0, "", None, None)
    record.msg = f"{method} {route} {status} {milliseconds:.2f}ms"
    record.__dict__.update(zip(logs.REQUEST_FIELDS, fields, strict=True))
    return record


def test_a_text_request_line_reads_as_its_record() -> None:
    formatter = TextFormatter()

    assert formatter.request_line(logging.INFO, FIELDS) == formatter.format(record_of(FIELDS))


def test_a_json_request_line_reads_as_its_record() -> None:
    configured = logging_config("info", "json")["formatters"]["default"]
    assert configured["()"] == "api.logs.JsonLines"
    formatter = JsonLines(**{key: value for key, value in configured.items() if key != "()"})

    fast = json.loads(formatter.request_line(logging.INFO, FIELDS))
    made = json.loads(formatter.format(record_of(FIELDS)))

    assert fast.keys() == made.keys() and fast.pop("timestamp") and made.pop("timestamp")
    assert fast == made


@pytest.fixture
def buffered() -> Iterator[tuple[io.BytesIO, TickFlushedHandler]]:
    written = io.BytesIO()
    handler = TickFlushedHandler(io.TextIOWrapper(io.BufferedWriter(written), encoding="utf-8"))
    handler.setFormatter(TextFormatter())
    yield written, handler
    handler.close()


async def test_lines_leave_once_per_turn_of_the_event_loop(buffered: tuple[io.BytesIO, TickFlushedHandler]) -> None:
    written, handler = buffered
    assert logs.request_lines is handler

    handler.write_request(logging.INFO, FIELDS)
    handler.write_request(logging.INFO, FIELDS)
    assert written.getvalue() == b"", "held until the loop turns"
    await anyio.lowlevel.checkpoint()

    assert written.getvalue().decode().count("GET /users/{user_id} 200 1.25ms") == 2


async def test_warnings_leave_at_once(buffered: tuple[io.BytesIO, TickFlushedHandler]) -> None:
    written, handler = buffered

    handler.handle(logging.LogRecord("users_api", logging.WARNING, __file__, 0, "database unavailable", None, None))

    assert written.getvalue() == b"WARNING:  database unavailable\n"


def test_outside_an_event_loop_lines_leave_at_once(buffered: tuple[io.BytesIO, TickFlushedHandler]) -> None:
    written, handler = buffered

    handler.write_request(logging.INFO, FIELDS)

    assert written.getvalue().endswith(b"trace_id=4bf92f3577b34da6a3ce929d0e0e4736\n")


def test_a_closed_handler_takes_no_more_request_lines(buffered: tuple[io.BytesIO, TickFlushedHandler]) -> None:
    _, handler = buffered
    handler.close()

    assert logs.request_lines is None
