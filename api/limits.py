"""Request body size limit: oversized bodies get a 413 before any route sees them.

Checked by api/edge.py, in the one layer every request passes. Hand-written, not Starlette's
RequestBodyLimitMiddleware (FastAPI's `max_body_size`): that one checks a declared length only when
the route reads the body or starts its response, so an oversized DELETE would delete, and it answers
in text/plain.
"""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive

from api.problems import problem

MAX_BODY_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


def refusal(content_length: bytes, max_bytes: int = MAX_BODY_BYTES) -> ASGIApp | None:
    """The 413 for a declared Content-Length over the limit, answered before the route runs; else None.

    Before the route, so an oversized DELETE or PATCH changes nothing.
    """
    if content_length.isdigit() and int(content_length) > max_bytes:
        return problem(413, str(BodyTooLarge(max_bytes).detail))
    return None


# HTTP/1 framing bounds a body without Transfer-Encoding: Content-Length bytes exactly, or none
# without either header (RFC 9112, 6.3), and the server reads no further. Nothing to count then.
FRAMED = ("1.0", "1.1")


def bounded(receive: Receive, max_bytes: int = MAX_BODY_BYTES) -> Receive:
    """`receive`, counting what a streamed body has sent so far, refusing it once past `max_bytes`."""
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                # FastAPI re-raises HTTPException from body reading; the problem handler answers it.
                raise BodyTooLarge(max_bytes)
        return message

    return receive_within_limit
