"""The one ASGI layer every HTTP request passes before routing: its trace id, its bearer token and its
body's limit on the way in; its trace id in a response header, its log line and its metrics on the way out.

The outermost of the app's own middleware: it sees every answer the app gives, 413s and 405s included.
An error no handler answered is answered here, a 500, so that its log line and its response carry the
request's trace id; Starlette's last-resort handler would answer outside it. One layer, not one per
concern: each pure ASGI layer costs a call, a closure and a scan of the headers on every request
(docs/levers.md, "one edge layer").
"""

import logging
import time

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import limits, logs, tracing
from api.access import Access, route_path
from api.logs import CURRENT, REQUEST_LOGGER, route_of
from api.metrics import TALLY
from api.problems import UNEXPECTED, problem
from api.tracing import trace_id_of, traceresponse

log = logging.getLogger(REQUEST_LOGGER)
errors = logging.getLogger(__name__)

# Probes and scrapes come every few seconds; their lines are debug, unless they fail.
QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics"})


class Edge:
    """Trace id, body limit, request line and metrics for every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metered: bool = True,
        traced: bool = False,
        access: Access | None = None,
        max_body_bytes: int = limits.MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.metered = metered  # METRICS
        self.traced = traced  # traces exported: the ids are those of FastAPI's server span
        self.access = access  # AUTH_ISSUER: who may do what; None, nothing authenticated
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        traceparent = content_length = transfer_encoding = authorization = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value
            elif name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                transfer_encoding = value
            elif name == b"authorization":
                authorization = value
        header = traceresponse(traceparent, self.traced)
        status = 0

        async def send_with_trace_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"traceresponse", header)]
            await send(message)

        app = self.app
        if content_length is not None:
            app = limits.refusal(content_length, self.max_body_bytes) or app
        if transfer_encoding is not None or scope.get("http_version") not in limits.FRAMED:
            receive = limits.bounded(receive, self.max_body_bytes)
        token = CURRENT.set((scope, header))
        started = time.perf_counter()
        TALLY.active += 1
        try:
            if self.access is not None:
                app = await self._authorised(self.access, scope, authorization, app)
            await app(scope, receive, send_with_trace_id)
        except Exception:
            if status:  # the response has begun: nothing left to answer with
                raise
            errors.exception("unexpected error answering %s %s", scope["method"], route_of(scope) or "-")
            await problem(500, UNEXPECTED)(scope, receive, send_with_trace_id)
        finally:
            TALLY.active -= 1
            if status:  # 0: cancelled before any answer, so there is nothing to count or log
                self._ended(scope, status, time.perf_counter() - started, header)
            CURRENT.reset(token)

    async def _authorised(self, access: Access, scope: Scope, authorization: bytes | None, app: ASGIApp) -> ASGIApp:
        """`app` if the request may go on, else the refusal to answer with; the principal, if the token has one,
        in the request's state (a 403's too: its line and span name who was refused)."""
        path = route_path(scope["path"], scope.get("root_path", ""))
        principal, refusal = await access.check(scope["method"], path, authorization)
        if principal is not None:
            scope.setdefault("state", {})["principal"] = principal
            if self.traced:
                tracing.name_principal(principal.subject, principal.client_id)
        if refusal is None:
            return app
        # Refused before routing: the route is found here, so that the line and the metrics name it.
        for route in scope["app"].router.routes:
            if route.matches(scope)[0] is Match.FULL:
                scope["route"] = route
                break
        return refusal

    def _ended(self, scope: Scope, status: int, seconds: float, header: bytes) -> None:
        method, route = scope["method"], route_of(scope)
        if self.metered:
            TALLY.request(method, route, status, seconds)
        level = logging.DEBUG if route in QUIET_ROUTES and status < 500 else logging.INFO
        if not log.isEnabledFor(level):
            return
        milliseconds = round(seconds * 1000, 2)
        principal = scope.get("state", {}).get("principal")
        who = (principal.subject, principal.client_id) if principal is not None else (None, None)
        fields = (method, route, status, milliseconds, trace_id_of(header), *who)
        handler = logs.request_lines
        if handler is not None:
            handler.write_request(level, fields)
            return
        # Logging set up by a host (tests, an embedding app): a record, as any other line.
        record = logging.LogRecord(log.name, level, __file__, 0, logs.request_message(fields), None, None)
        record.__dict__.update(logs.named(fields))
        log.handle(record)
