"""Every error leaves as RFC 9457 `application/problem+json`; no stack trace or SQL text reaches a client."""

import logging
import math
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from api import metrics
from api.db import Refused, Unavailable
from api.metrics import UnavailableReason
from api.schemas import Problem

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 1
# The methods of RFC 9110 and PATCH (RFC 5789), in the order an Allow header lists them.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")

log = logging.getLogger(__name__)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An RFC 9457 response; `type` stays about:blank, so `title` is the status phrase."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return ProblemResponse(body, status_code=status, headers=dict(headers) if headers else None)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        raise TypeError(f"registered for HTTPException, called with {type(exc).__name__}")
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI's answer to a body it could not decode (not UTF-8, nested too deeply for the parser):
        # malformed JSON, a 422 like every other.
        cause = exc.__cause__
        reason = "nested too deeply" if isinstance(cause, RecursionError) else str(cause)
        error = {"loc": ["body"], "msg": f"the body is not valid JSON: {reason}", "type": "json_invalid"}
        return problem(422, f"body: {error['msg']}", errors=[error])
    if exc.status_code == 405:
        allow = _allowed_methods(request)
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allow}"
        return problem(405, detail, headers={"Allow": allow})
    return problem(exc.status_code, str(exc.detail), headers=exc.headers)


def _allowed_methods(request: Request) -> str:
    """Every method the resource supports, as RFC 9110 asks of a 405's Allow.

    The router's own 405 names only the methods of the first route whose path matched: /users has
    one route for GET and another for POST. This asks every route, once per method, on a 405 only.
    """
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):
        raise TypeError(f"registered for RequestValidationError, called with {type(exc).__name__}")
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return problem(422, f"{where}: {first['msg']}{more}", errors=errors)


# What operators are told when a pooler in front of PostgreSQL does not keep prepared statements.
PREPARED_STATEMENTS_LOST = (
    "a prepared statement's name met another on a server connection: a connection pooler in transaction mode "
    "that does not keep prepared statements (PgBouncer before 1.21, or without max_prepared_statements) is in "
    "between, and statements may run as others'; set STATEMENT_CACHE_SIZE=0, or max_prepared_statements in "
    "PgBouncer"
)
# What a client is told of each reason for a 503; the reason itself goes to the log and the metric.
UNAVAILABLE_DETAILS: dict[UnavailableReason, str] = {
    "pool_timeout": "all database connections are busy; retry shortly",
    "database_unreachable": "the database is unavailable; retry shortly",
    "statement_timeout": "the database is unavailable; retry shortly",
    "no_file_descriptor": "the service cannot open a database connection now; retry shortly",
    "no_signing_keys": "the service has not fetched its identity provider's keys yet; retry shortly",
    "prepared_statements_lost": "the service cannot run statements through its connection pooler; retry later",
}


def unavailable_response(reason: UnavailableReason, detail: str | None = None) -> Response:
    """A 503 with Retry-After, counted by reason in users_api_unavailable_responses_total."""
    metrics.UNAVAILABLE.labels(reason).inc()
    detail = detail or UNAVAILABLE_DETAILS[reason]
    return problem(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def log_prepared_statements_lost(error: Exception) -> None:
    """The error that names the fix, at most once a second whoever met the symptom (a request, /ready)."""
    held_back = POOLER_LINES.due()
    if held_back is not None:
        more = f" ({held_back} more since the last such line)" if held_back else ""
        cause = str(error).split("\n", 1)[0]  # asyncpg's hint, lines more, advises another pool than ours
        log.error("%s (%s)%s", PREPARED_STATEMENTS_LOST, cause, more)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, Unavailable):
        raise TypeError(f"registered for Unavailable, called with {type(exc).__name__}")
    if exc.reason == "no_file_descriptor":
        log.error("no file descriptor left to open a database connection (%s): raise `ulimit -n`", exc)
    elif exc.reason == "prepared_statements_lost":
        log_prepared_statements_lost(exc)
    elif exc.reason != "pool_timeout":
        held_back = OUTAGE_LINES.due()
        if held_back is not None:
            more = f" ({held_back} more since the last such line)" if held_back else ""
            log.warning("database unavailable: %s%s", exc, more)
    return unavailable_response(exc.reason)


class Throttle:
    """One line per `seconds` at most; the ones held back are counted, for the next line to say.

    An outage fails every request: one warning each would fill the log at the rate of the traffic,
    where one a second says as much. The 503s are all counted in users_api_unavailable_responses_total.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.last = -math.inf
        self.held_back = 0

    def due(self) -> int | None:
        """None while a line is not due; else how many were held back since the last."""
        now = time.monotonic()
        if now - self.last < self.seconds:
            self.held_back += 1
            return None
        held_back, self.held_back, self.last = self.held_back, 0, now
        return held_back


OUTAGE_LINES = Throttle(seconds=1.0)
POOLER_LINES = Throttle(seconds=1.0)  # its own: an outage's lines must not hold back the one that names the fix


async def _refused_by_database(request: Request, exc: Exception) -> Response:
    # The API validates what the CHECK constraints hold, so reaching this is a bug worth a log line;
    # the client still learns its request was refused and that nothing was stored.
    log.error("database refused a value: %s", exc)
    return problem(422, "a value was refused by the database; nothing was stored")


# Any other error is a bug: api/edge.py logs it with its traceback and answers this 500.
UNEXPECTED = "an unexpected error occurred; it has been logged"


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error a request can meet to an RFC 9457 response: HTTP's own, then the database's."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Unavailable, _database_unavailable)
    app.add_exception_handler(Refused, _refused_by_database)


RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    }
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer with."""
    return {
        status: {"model": Problem, "description": HTTPStatus(status).phrase}
        | ({"headers": RETRY_AFTER_HEADER} if status == 503 else {})
        for status in statuses
    }
