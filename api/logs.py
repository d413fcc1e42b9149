"""What a log line written while a request is answered carries (its trace id, its route) and how it reads."""

import logging
from contextvars import ContextVar
from typing import Any

from starlette.types import Scope

# The request being answered, for the log lines written while it is: its scope and its trace id.
CURRENT: ContextVar[tuple[Scope, str] | None] = ContextVar("users_api_request", default=None)


def route_of(scope: Scope) -> str:
    """The path template the router matched (`/users/{user_id}`), never the raw path; "" when none did."""
    route = scope.get("route")
    return getattr(route, "path_format", "") if route is not None else ""


class RequestContext(logging.Filter):
    """Gives every log record written while a request is answered its `trace_id` and `request` (method, route)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = CURRENT.get()
        if current is not None:
            scope, trace_id = current
            record.trace_id = trace_id
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
