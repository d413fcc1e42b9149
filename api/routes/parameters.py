"""What the /users routes take besides a body: the id in the path, the page's query, If-Match, checked as declared."""

from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from pydantic import BeforeValidator

from api.conditions import precondition_required
from api.schemas import BIGINT_MAX, EMAIL_DESCRIPTION, EMAIL_SCHEMA, CheckedEmail

PAGE_MAX = 1000


def _decimal_digits(value: object) -> object:
    # Lax int parsing would take "1.0", " 1" or "1_000" as ids; a URL's number is plain digits.
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written in digits")
    return value


# The bounds come before the validator: after it, pydantic writes them as "ge"/"le", which JSON Schema
# does not know, instead of "minimum"/"maximum" (pydantic#11576), and clients would see no bounds.
Digits = BeforeValidator(_decimal_digits)
INT64 = {"format": "int64"}
UserId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The user's id.", json_schema_extra=INT64), Digits]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description="Users per page."), Digits]
After = Annotated[
    int, Query(ge=0, le=BIGINT_MAX, description="Return users with a larger id.", json_schema_extra=INT64), Digits
]
EmailQuery = Annotated[
    CheckedEmail | None,
    Query(
        description="Only the user with this email, compared case-insensitively: a page of zero or one user, "
        f"still after `after`; `limit` is checked but cannot shorten it. {EMAIL_DESCRIPTION}",
        json_schema_extra=EMAIL_SCHEMA,
    ),
]


async def if_match(
    request: Request,
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="The user's ETag as the client last saw it: the write happens only if the user has not "
            "changed since (412 otherwise). `*` or no header: unconditional, unless REQUIRE_IF_MATCH (428).",
        ),
    ] = None,
) -> str | None:
    """The request's If-Match; 428 when it has none and the service requires one (REQUIRE_IF_MATCH)."""
    if value is None and request.state.require_if_match:
        raise precondition_required()
    return value


IfMatch = Annotated[str | None, Depends(if_match)]


def header(request: Request, name: bytes) -> str | None:
    """The first value of the request's header `name` (lower case, as ASGI gives names), as
    `request.headers.get` would give it. For headers every get-one reads and few send: Starlette's
    `Headers.get` raises and catches a KeyError for each one absent (docs/levers.md, "a get-one's path trimmed")."""
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
