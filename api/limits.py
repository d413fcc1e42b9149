"""Request body size limit: oversized bodies get a 413 before any route sees them."""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem

MAX_BODY_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


class BodyLimitMiddleware:
    """Refuse a declared Content-Length over the limit up front, and a streamed body once it passes it.

    Hand-written, not Starlette's RequestBodyLimitMiddleware (FastAPI's `max_body_size`): that one
    checks a declared length only when the route reads the body or starts its response, so an
    oversized DELETE would delete, and answers in text/plain.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = chunked = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = value
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            # Refused before the route runs, so an oversized DELETE or PATCH changes nothing.
            await problem(413, str(BodyTooLarge(self.max_bytes).detail))(scope, receive, send)
            return
        if chunked is None and scope.get("http_version") in ("1.0", "1.1"):
            # HTTP/1 framing bounds the body: Content-Length bytes exactly, or none without either
            # header (RFC 9112, 6.3), and the server reads no further. Nothing to count.
            await self.app(scope, receive, send)
            return

        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPException from body reading; the problem handler answers it.
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, receive_within_limit, send)
