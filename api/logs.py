"""What a log line written while a request is answered carries (its trace id, its route) and how it reads."""

import asyncio
import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter
from starlette.types import Scope

from api.tracing import trace_id_of

# The request being answered, for the log lines written while it is: its scope and its traceresponse.
CURRENT: ContextVar[tuple[Scope, bytes] | None] = ContextVar("users_api_request", default=None)


def route_of(scope: Scope) -> str:
    """The path template the router matched (`/users/{user_id}`), never the raw path; "" when none did."""
    route = scope.get("route")
    return getattr(route, "path_format", "") if route is not None else ""


def request_context() -> "RequestContext":
    """The service's log filter, as its logging configuration makes it; records made lean on the way.

    A record looks up the caller's file and line, the thread, the process and (3.12) the asyncio task,
    which no line here prints: more than half of what a request's log line cost. Python's Logging
    HOWTO ("Optimization") gives these switches for that. Only where the service's logging is set up,
    not in tests, whose failure reports print the file and line.
    """
    logging._srcfile = None  # the documented switch, private as it is
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if hasattr(logging, "logAsyncioTasks"):
        setattr(logging, "logAsyncioTasks", False)  # noqa: B010 - Python 3.12 and later
    return RequestContext()


class RequestContext(logging.Filter):
    """Gives every log record written while a request is answered its `trace_id` and `request` (method, route)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = CURRENT.get()
        if current is not None and "trace_id" not in record.__dict__:  # a request's own line has its id
            scope, traceresponse = current
            record.trace_id = trace_id_of(traceresponse)
            record.request = f"{scope['method']} {route_of(scope) or '-'}"
        return True


class TextFormatter(logging.Formatter):
    """`LEVEL:    message`, then the request it is about when there is one: the uvicorn look, plus a trace id."""

    def __init__(self, **options: Any) -> None:
        super().__init__("%(levelname)s %(message)s", **options)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname + ':':<9} {record.message}"
        trace_id = getattr(record, "trace_id", None)
        if trace_id is None:
            return line
        if hasattr(record, "duration_ms"):  # the request's own line names it already
            return f"{line} trace_id={trace_id}"
        return f"{line} ({getattr(record, 'request', '-')}, trace_id={trace_id})"

    def request_line(self, level: int, fields: "RequestFields") -> str:
        """The line `format` would give a request's record, without making the record."""
        prefix = logging.getLevelName(level) + ":"
        return f"{prefix:<9} {request_message(fields)} trace_id={fields[-1]}"


class JsonLines(JsonFormatter):
    """LOG_FORMAT=json: python-json-logger's lines, and a request's line made as it would make it."""

    def request_line(self, level: int, fields: "RequestFields") -> str:
        line: dict[str, object] = {"level": logging.getLevelName(level), "logger": REQUEST_LOGGER}
        line |= {"message": request_message(fields), **dict(zip(REQUEST_FIELDS, fields, strict=True))}
        line["timestamp"] = datetime.now(UTC).isoformat()
        return json.dumps(line, ensure_ascii=False)


REQUEST_LOGGER = "users_api.requests"
# A request's line: method, route template, status, milliseconds, trace id; the names a record gives them.
RequestFields = tuple[str, str, int, float, str]
REQUEST_FIELDS = ("method", "route", "status", "duration_ms", "trace_id")


def request_message(fields: RequestFields) -> str:
    """A request's line's message, `GET /users/{user_id} 200 1.25ms`, however the line is written."""
    method, route, status, milliseconds, _ = fields
    return f"{method} {route or '-'} {status} {milliseconds:.2f}ms"


class TickFlushedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines to stderr, written out once per turn of the event loop rather than once per line.

    Under load a turn of the loop ends many requests: their lines leave in one write instead of one
    system call each. Outside a running loop (start-up, the command line, exit), and for warnings and
    errors, a line is written out at once; at most one turn's lines are lost to a `kill -9`.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        global request_lines
        if stream is None:  # a buffered stream of its own on stderr's descriptor: sys.stderr writes every line
            stream = open(sys.stderr.fileno(), "w", buffering=1 << 16, encoding="utf-8", closefd=False)  # noqa: SIM115
        super().__init__(stream)
        self.due = False
        request_lines = self

    def write_request(self, level: int, fields: RequestFields) -> None:
        """A request's line, formatted as its record would be, without the record or the logger's way.

        Python's logging spent 75,000 instructions on each request's line (a record, the logger's and
        the handler's filters and locks): 11% of a get-one, where the line itself costs a few
        thousand (bench/levers.md). Only the lines of `users_api.requests` go this way, and only once
        the service's logging is set up (api/ops/logging_config.py); the logger's level still decides.
        """
        formatter = self.formatter
        if not isinstance(formatter, TextFormatter | JsonLines):
            raise TypeError(f"{type(formatter).__name__} cannot write a request's line")
        self.stream.write(formatter.request_line(level, fields) + "\n")
        self.flush()

    def close(self) -> None:
        global request_lines
        if request_lines is self:
            request_lines = None
        super().close()

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)  # writes to the buffer, then calls flush()
        if record.levelno >= logging.WARNING:
            self.write_out()

    def flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write_out()
            return
        if not self.due:
            self.due = True
            loop.call_soon(self.write_out)

    def write_out(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self.due = False
            self.stream.flush()


# The service's handler, once its logging is set up: requests' lines go straight to it.
request_lines: TickFlushedHandler | None = None
