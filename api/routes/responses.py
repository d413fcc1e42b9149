"""How /users answers: PostgreSQL's JSON sent as it is, a created user's headers, and the 404 and 409."""

from collections.abc import Mapping
from typing import Any

from fastapi import Response, status
from starlette.exceptions import HTTPException

from api.conditions import etag


class JSONText(Response):
    """A body PostgreSQL already wrote as JSON (see sql/): sent as it is, with no Python re-encoding.

    The route's response_model still documents its shape in OpenAPI; tests check the two agree.
    """

    media_type = "application/json"

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        # Starlette's looks through the headers given for a Content-Length or a Content-Type of their own;
        # the routes never give one, and a JSONText always has a body (docs/levers.md, "a get-one's path trimmed").
        given = headers.items() if headers else ()
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in given]
        raw += [(b"content-length", b"%d" % len(self.body)), (b"content-type", b"application/json")]
        self.raw_headers = raw


def created(row: Any, headers: dict[str, str] | None = None) -> JSONText:
    """The 201 of a user made (or replayed): its body, Location, and the ETag Content-Location says it is of."""
    location, tag = f"/users/{row['id']}", etag(row["id"], row["version"])
    # The ETag of a 201 is the new user's, not /users's: Content-Location says so (RFC 9110, 8.7).
    found = {"Location": location, "Content-Location": location, "ETag": tag}
    return JSONText(row["body"], status.HTTP_201_CREATED, found | (headers or {}))


def not_found(user_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id} does not exist")


def email_taken(email: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, f"the email {email!r} belongs to another user")
