"""What a log line written while a request is answered carries (its trace id, its route) and how it reads."""

import asyncio
import json
import logging
import select
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

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
            return f"{line} trace_id={trace_id}{who(getattr(record, 'sub', None), getattr(record, 'client_id', None))}"
        return f"{line} ({getattr(record, 'request', '-')}, trace_id={trace_id})"

    def request_line(self, level: int, fields: "RequestFields", created: float = 0.0) -> str:
        """The line `format` would give a request's record, without making the record."""
        prefix = logging.getLevelName(level) + ":"
        return f"{prefix:<9} {request_message(fields)} trace_id={fields[4]}{who(fields[5], fields[6])}"


class JsonLines(JsonFormatter):
    """LOG_FORMAT=json: python-json-logger's lines, and a request's line made as it would make it."""

    def request_line(self, level: int, fields: "RequestFields", created: float) -> str:
        """The line `format` would give a request's record made at `created`, without making the record."""
        line: dict[str, object] = {"level": logging.getLevelName(level), "logger": REQUEST_LOGGER}
        line |= {"message": request_message(fields), **named(fields)}
        line["timestamp"] = datetime.fromtimestamp(created, UTC).isoformat()
        return json.dumps(line, ensure_ascii=False)


REQUEST_LOGGER = "api.requests"
# A request's line: method, route template, status, milliseconds, trace id, and with a verified token its
# subject and client; the names a record gives them. Never the token.
RequestFields = tuple[str, str, int, float, str, str | None, str | None]
REQUEST_FIELDS = ("method", "route", "status", "duration_ms", "trace_id", "sub", "client_id")


def request_message(fields: RequestFields) -> str:
    """A request's line's message, `GET /users/{user_id} 200 1.25ms`, however the line is written."""
    method, route, status, milliseconds = fields[:4]
    return f"{method} {route or '-'} {status} {milliseconds:.2f}ms"


def named(fields: RequestFields) -> dict[str, object]:
    """The fields by name, as a record carries them: those a request without a token has not, left out."""
    return {name: value for name, value in zip(REQUEST_FIELDS, fields, strict=True) if value is not None}


def who(sub: str | None, client_id: str | None) -> str:
    """` sub=... client_id=...` for a text line, each only when known; a value with spaces or controls quoted."""
    if not sub and not client_id:  # every line of a service without AUTH_ISSUER
        return ""
    found = [f"{name}={_printable(value)}" for name, value in (("sub", sub), ("client_id", client_id)) if value]
    return "".join(f" {part}" for part in found)


def _printable(value: str) -> str:
    return value if value.isprintable() and " " not in value else json.dumps(value)


class Writable(Protocol):
    def write(self, data: memoryview, /) -> int | None: ...


# A write of at most PIPE_BUF bytes to a pipe is never interleaved with another process's write to it
# (POSIX). Workers share stderr's pipe; writes this size, ending on a line, never mix lines. The
# platform's own value (Linux's is 4,096); POSIX guarantees 512 at least, taken where none is known.
PIPE_BUF = getattr(select, "PIPE_BUF", 512)
FLUSH_SECONDS = 0.1


class BatchedLines(logging.Handler):
    """Lines to stderr, held and written out together, at most FLUSH_SECONDS after the first of them.

    A write per line is a system call per request, and Python's own buffer writes out when it is full,
    mid-line, where another worker's lines can cut in. Here a write holds whole lines, at most PIPE_BUF
    bytes of them. Warnings and errors leave at once, with the lines held before them, and so does a
    line written outside a running event loop (start-up, the command line, exit); at most FLUSH_SECONDS
    of info lines are lost to a `kill -9`.
    """

    def __init__(self, stream: Writable | None = None) -> None:
        global request_lines
        super().__init__()
        self.setFormatter(TextFormatter())
        # Unbuffered: this handler decides what each write holds.
        self.stream: Writable = stream or open(sys.stderr.fileno(), "wb", buffering=0, closefd=False)  # noqa: SIM115
        self.requests: list[tuple[int, RequestFields, float]] = []  # requests' lines, not yet formatted
        self.held: list[bytes] = []  # lines formatted, not yet written
        self.size = 0
        self.due = False  # a write-out is scheduled on the event loop
        request_lines = self

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        if not isinstance(fmt, TextFormatter | JsonLines):
            raise TypeError(f"{type(fmt).__name__} cannot write a request's line: TextFormatter or JsonLines")
        super().setFormatter(fmt)
        self.line_formatter = fmt  # the same, typed as one that writes a request's line from its fields

    def write_request(self, level: int, fields: RequestFields) -> None:
        """A request's line: its fields held as they are, formatted with the others at the write-out.

        Python's logging spends more on a request's line (a record, the logger's and the handler's
        filters and locks) than the rest of what operators see, and formatting the line on the
        request's way, once per request with the caches cold, still cost more than in one loop for
        many (docs/levers.md, "request lines without a record", "request lines held as tuples"). Here
        a request appends a tuple; the write-out formats the lines as their records would read, in
        one loop. Only the lines of `api.requests` go this way, and only once the service's
        logging is set up (api/ops/logging_config.py); the logger's level still decides. Called on
        the event loop's thread only, as the edge is.
        """
        self.requests.append((level, fields, time.time()))
        if not self.due:
            self._schedule()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._format_requests()  # the requests' lines held before this one go first
        self._add(line)
        if record.levelno >= logging.WARNING:
            self._write_out()
        elif not self.due:
            self._schedule()

    def flush(self) -> None:
        """Write out every line held; logging.shutdown() calls it at exit."""
        with self.lock:  # type: ignore[union-attr]
            self._write_out()

    def close(self) -> None:
        global request_lines
        if request_lines is self:
            request_lines = None
        self.flush()
        super().close()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self.due = True
        loop.call_later(FLUSH_SECONDS, self._due)

    def _due(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self.due = False
            self._write_out()

    def _format_requests(self) -> None:
        if not self.requests:
            return
        formatter = self.line_formatter
        requests, self.requests = self.requests, []
        for level, fields, created in requests:
            self._add(formatter.request_line(level, fields, created))

    def _add(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "backslashreplace")
        if self.size + len(data) > PIPE_BUF:
            self._write_held()
        self.held.append(data)
        self.size += len(data)

    def _write_out(self) -> None:
        self._format_requests()
        self._write_held()

    def _write_held(self) -> None:
        if not self.held:
            return
        data = memoryview(b"".join(self.held))
        self.held.clear()
        self.size = 0
        try:
            while data:
                data = data[self.stream.write(data) or 0 :]
        except OSError:
            pass  # stderr is gone: there is nowhere left to say so


# The service's handler, once its logging is set up: requests' lines go straight to it.
request_lines: BatchedLines | None = None
