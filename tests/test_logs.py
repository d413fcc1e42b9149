"""The service's log lines: a request's line made without a record reads as its record would."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from api import logs
from api.logs import REQUEST_LOGGER, BatchedLines, JsonLines, RequestFields, TextFormatter
from api.ops.logging_config import logging_config

pytestmark = pytest.mark.anyio

FIELDS: RequestFields = ("GET", "/users/{user_id}", 200, 1.25, "4bf92f3577b34da6a3ce929d0e0e4736", None, None)
# A request with a verified token: its subject (one with a space, quoted in a text line) and its client.
WITH_A_TOKEN: RequestFields = (*FIELDS[:5], "ada lovelace", "reports-app")


def record_of(fields: RequestFields) -> logging.LogRecord:
    """The record the logging path makes for a request (api/edge.py, when logging is a host's)."""
    method, route, status, milliseconds = fields[:4]
    record = logging.LogRecord("api.requests", logging.INFO, __file__, 0, "", None, None)
    record.msg = f"{method} {route} {status} {milliseconds:.2f}ms"
    record.__dict__.update(logs.named(fields))
    return record


@pytest.mark.parametrize("fields", [FIELDS, WITH_A_TOKEN], ids=["anonymous", "with a token"])
def test_a_text_request_line_reads_as_its_record(fields: RequestFields) -> None:
    formatter = TextFormatter()

    assert formatter.request_line(logging.INFO, fields) == formatter.format(record_of(fields))


def test_a_text_request_line_names_the_tokens_subject_and_client() -> None:
    line = TextFormatter().request_line(logging.INFO, WITH_A_TOKEN)

    assert line.endswith(' trace_id=4bf92f3577b34da6a3ce929d0e0e4736 sub="ada lovelace" client_id=reports-app')


@pytest.mark.parametrize("fields", [FIELDS, WITH_A_TOKEN], ids=["anonymous", "with a token"])
def test_a_json_request_line_reads_as_its_record(fields: RequestFields) -> None:
    configured = logging_config("info", "json")["formatters"]["default"]
    assert configured["()"] == "api.logs.JsonLines"
    formatter = JsonLines(**{key: value for key, value in configured.items() if key != "()"})

    record = record_of(fields)
    fast = json.loads(formatter.request_line(logging.INFO, fields, record.created))
    made = json.loads(formatter.format(record))

    assert fast == made
    assert ("sub" in made) is (fields[5] is not None)


class Writes(io.RawIOBase):
    """stderr as the handler sees it, keeping each write apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def text(self) -> str:
        return b"".join(self.writes).decode()


@pytest.fixture
def buffered(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Writes, BatchedLines]]:
    monkeypatch.setattr(logs, "FLUSH_SECONDS", 0.05)
    written = Writes()
    handler = BatchedLines(written)
    handler.setFormatter(TextFormatter())
    yield written, handler
    handler.close()


async def test_lines_are_held_then_written_out_together(buffered: tuple[Writes, BatchedLines]) -> None:
    written, handler = buffered
    assert logs.request_lines is handler

    handler.write_request(logging.INFO, FIELDS)
    handler.write_request(logging.INFO, FIELDS)
    await anyio.lowlevel.checkpoint()
    assert written.writes == [], "held past the turn of the loop"
    await anyio.sleep(logs.FLUSH_SECONDS * 3)

    assert len(written.writes) == 1
    assert written.text().count("GET /users/{user_id} 200 1.25ms") == 2


async def test_a_write_holds_whole_lines_and_at_most_pipe_buf_bytes(buffered: tuple[Writes, BatchedLines]) -> None:
    written, handler = buffered

    for _ in range(200):
        handler.write_request(logging.INFO, FIELDS)
    handler.flush()

    assert len(written.writes) > 1
    assert all(len(write) <= logs.PIPE_BUF and write.endswith(b"\n") for write in written.writes)
    assert written.text().count("GET /users/{user_id} 200 1.25ms") == 200


async def test_warnings_leave_at_once_after_the_lines_held_before_them(
    buffered: tuple[Writes, BatchedLines],
) -> None:
    written, handler = buffered

    handler.write_request(logging.INFO, FIELDS)
    handler.handle(logging.LogRecord("api.problems", logging.WARNING, __file__, 0, "database unavailable", None, None))

    assert written.text().startswith("INFO:     GET /users/{user_id} 200 1.25ms")
    assert written.text().endswith("\nWARNING:  database unavailable\n")


def test_outside_an_event_loop_lines_leave_at_once(buffered: tuple[Writes, BatchedLines]) -> None:
    written, handler = buffered

    handler.write_request(logging.INFO, FIELDS)

    assert written.text().endswith("trace_id=4bf92f3577b34da6a3ce929d0e0e4736\n")


def test_a_closed_handler_takes_no_more_request_lines(buffered: tuple[Writes, BatchedLines]) -> None:
    _, handler = buffered
    handler.close()

    assert logs.request_lines is None


def test_the_handler_takes_only_formatters_that_can_write_a_request_line() -> None:
    handler = BatchedLines(Writes())
    try:
        with pytest.raises(TypeError, match="cannot write a request's line"):
            handler.setFormatter(logging.Formatter())
    finally:
        handler.close()


def test_the_bench_names_the_request_lines_logger_as_the_service_does() -> None:
    # bench/ may not import api.logs (pyproject.toml's contract): it spells the documented name itself.
    from bench.observability import REQUEST_LINES

    assert REQUEST_LINES == REQUEST_LOGGER
