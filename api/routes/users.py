"""/users: each route runs one query file on the request's connection and shapes the row."""

from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Header, Path, Query, Request, Response, status
from pydantic import BeforeValidator
from starlette.exceptions import HTTPException

from api.conditions import etag, none_match, precondition_failed, precondition_required, versions_named
from api.db import Db
from api.problems import RETRY_AFTER_HEADER, problem, problem_responses
from api.queries import SQL
from api.routes import Routes
from api.schemas import (
    BIGINT_MAX,
    EMAIL_DESCRIPTION,
    EMAIL_SCHEMA,
    CheckedEmail,
    UserCreate,
    UserPublic,
    UserUpdate,
)

PAGE_MAX = 1000
EMAIL_UNIQUE_INDEX = "users_email_key"
IDEMPOTENCY_KEY_INDEX = "idempotency_keys_pkey"


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

# 1 to 255 visible ASCII characters (spaces inside), quoted as the draft's sf-string or bare; the
# column's CHECK holds the same 255. An empty or half-quoted key is refused (422).
IDEMPOTENCY_KEY_PATTERN = r'^(?:"[ !#-\[\]-~]{1,255}"|[!#-~](?:[ -~]{0,253}[!-~])?)$'
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Makes a retry safe (draft-ietf-httpapi-idempotency-key-header): the same key with the same "
        "body within 24 hours gets the first 201 again, and nothing is created twice; with another body, 422; "
        'while the first is being answered, 409. 1-255 visible ASCII characters, quoted ("...") or not.',
        examples=['"8e03978e-40d5-43e8-bc93-6894a57f9324"'],
    ),
]
# Read from the request's headers by get_user itself and documented here, rather than declared as a
# FastAPI `Header` parameter: solving and validating a parameter cost a get-one 11 µs of CPU, 3%
# (bench/levers.md), for a header any string of which is acceptable.
IF_NONE_MATCH_PARAMETER = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETags the client holds; 304 without a body when one is current.",
    # As FastAPI documents an optional `Header` parameter: the document is what it was with one.
    "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "If-None-Match"},
}
ETAG_HEADER = {
    "ETag": {
        "description": 'The user\'s strong entity tag, `"<id>-<version>"`: it changes whenever the user does.',
        "schema": {"type": "string", "pattern": '^"[0-9]+-[0-9]+"$'},
    }
}
LOCATION_HEADER = {
    "Location": {"description": "/users/{id}", "schema": {"type": "string"}},
    # The ETag of a 201 is the new user's, not /users's: Content-Location says so (RFC 9110, 8.7).
    "Content-Location": {
        "description": "/users/{id}, the resource the body and ETag are of.",
        "schema": {"type": "string"},
    },
}
REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "`true` when this 201 is the one kept for the Idempotency-Key, sent again.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


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

routes = Routes(tags=["users"])


class JSONText(Response):
    """A body PostgreSQL already wrote as JSON (see sql/): sent as it is, with no Python re-encoding.

    response_model still documents its shape in OpenAPI; tests check the two agree.
    """

    media_type = "application/json"


def _not_found(user_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id} does not exist")


def _email_taken(email: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, f"the email {email!r} belongs to another user")


@routes.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses={
        201: {
            "headers": LOCATION_HEADER | ETAG_HEADER | REPLAYED_HEADER,
            # OpenAPI links: how a client (or a fuzzer's stateful run) goes on from the user just made,
            # a write sending back the ETag it was given as its If-Match.
            "links": {
                "GetUser": {"operationId": "get_user", "parameters": {"user_id": "$response.body#/id"}},
                **{
                    link: {
                        "operationId": operation,
                        "parameters": {"user_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"},
                    }
                    for link, operation in (("UpdateUser", "update_user"), ("DeleteUser", "delete_user"))
                },
            },
        },
        **problem_responses(409, 413, 422, 503),
        # 409 also while another request with the Idempotency-Key is answered, with Retry-After then.
        409: problem_responses(409)[409] | {"headers": RETRY_AFTER_HEADER},
    },
)
async def create_user(body: UserCreate, db: Db, idempotency_key: IdempotencyKey = None) -> Response:
    """Create a user; 409 if the email is taken, compared case-insensitively."""
    if idempotency_key is not None:
        return await _create_once(db, _unquoted(idempotency_key), body)
    row = await db.fetchrow(SQL.create_user, body.email, body.name)
    if row is None:
        raise _email_taken(body.email)
    return _created(row)


def _created(row: Any, headers: dict[str, str] | None = None) -> JSONText:
    location, tag = f"/users/{row['id']}", etag(row["id"], row["version"])
    created = {"Location": location, "Content-Location": location, "ETag": tag}
    return JSONText(row["body"], status.HTTP_201_CREATED, created | (headers or {}))


def _unquoted(key: str) -> str:
    return key[1:-1] if key[0] == '"' else key  # the pattern let a leading quote in only as a pair


async def _create_once(db: Db, key: str, body: UserCreate) -> Response:
    """POST with an Idempotency-Key: create_user_once decides; the rare races end in a second look."""
    for _ in range(2):
        try:
            row = await db.fetchrow(SQL.create_user_once, key, body.email, body.name)
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != IDEMPOTENCY_KEY_INDEX:
                raise
            row = None  # the key was kept meanwhile, or over 24 hours ago and not yet removed
        else:
            assert row is not None  # one row whatever the outcome
            if row["outcome"] == "created":
                return _created(row)
            if row["outcome"] == "kept":
                return _replayed(row, key)
            if row["outcome"] == "in_flight":
                raise _in_flight(key)
        # Taken since the statement began: by this key's first request, or another user has the email.
        found = await db.fetchrow(SQL.find_idempotency_key, key, body.email, body.name, read=True)
        if found is not None:
            return _replayed(found, key)
        if row is not None:
            raise _email_taken(body.email)
        await db.fetchval(SQL.forget_idempotency_key, key)  # kept over 24 hours ago: free it, try again
    raise _in_flight(key)


def _replayed(row: Any, key: str) -> Response:
    if not row["request_matches"]:
        detail = f"the Idempotency-Key {key!r} was used for another request within 24 hours; send a new key"
        error = {"loc": ["header", "Idempotency-Key"], "msg": detail, "type": "idempotency_key_reused"}
        return problem(status.HTTP_422_UNPROCESSABLE_CONTENT, detail, errors=[error])
    return _created(row, {"Idempotent-Replayed": "true"})


def _in_flight(key: str) -> HTTPException:
    detail = f"a request with the Idempotency-Key {key!r} is being answered; retry once it is"
    return HTTPException(status.HTTP_409_CONFLICT, detail, headers={"Retry-After": "1"})


@routes.get(
    "/users",
    response_model=list[UserPublic],
    responses={
        200: {
            "headers": {
                "Link": {
                    "description": '`</users?limit=N&after=LAST_ID>; rel="next"` when more users follow; '
                    "never with `email`.",
                    "schema": {"type": "string"},
                }
            }
        },
        **problem_responses(422, 503),
    },
)
async def list_users(
    db: Db,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="Users per page."), Digits] = 50,
    after: Annotated[
        int, Query(ge=0, le=BIGINT_MAX, description="Return users with a larger id.", json_schema_extra=INT64), Digits
    ] = 0,
    email: Annotated[
        CheckedEmail | None,
        Query(
            description="Only the user with this email, compared case-insensitively: a page of zero or one user, "
            f"still after `after`; `limit` is checked but cannot shorten it. {EMAIL_DESCRIPTION}",
            json_schema_extra=EMAIL_SCHEMA,
        ),
    ] = None,
) -> JSONText:
    """List users by ascending id, a page at a time (keyset pagination), or find one by email."""
    if email is not None:
        return JSONText(await db.fetchval(SQL.find_users_by_email, email, after, read=True))
    page = await db.fetchrow(SQL.list_users, after, limit, read=True)
    assert page is not None  # an aggregate: always one row
    link = f'</users?limit={limit}&after={page["last_id"]}>; rel="next"'
    return JSONText(page["body"], headers={"Link": link} if page["more"] else None)


@routes.get(
    "/users/{user_id}",
    response_model=UserPublic,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not Modified: the If-None-Match held the current ETag; no body.", "headers": ETAG_HEADER},
        **problem_responses(404, 422, 503),
    },
    openapi_extra={"parameters": [IF_NONE_MATCH_PARAMETER]},
)
async def get_user(user_id: UserId, db: Db, request: Request) -> Response:
    """Get one user by id; 304 if If-None-Match holds its current ETag."""
    row = await db.fetchrow(SQL.get_user, user_id, read=True)
    if row is None:
        raise _not_found(user_id)
    tag = etag(user_id, row["version"])
    if none_match(request.headers.get("if-none-match"), tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": tag})
    return JSONText(row["body"], headers={"ETag": tag})


@routes.patch(
    "/users/{user_id}",
    response_model=UserPublic,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412, 413, 422, 428, 503)},
)
async def update_user(user_id: UserId, body: UserUpdate, db: Db, if_match: IfMatch) -> JSONText:
    """Change a user's email and/or name; 412 if If-Match no longer holds its ETag."""
    versions = versions_named(if_match, user_id)
    try:
        row = await db.fetchrow(SQL.update_user, user_id, body.email, body.name, versions)
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != EMAIL_UNIQUE_INDEX:
            raise
        raise _email_taken(body.email or "") from None
    if row is None or (row["body"] is None and versions is None):  # none, or deleted as this ran
        raise _not_found(user_id)
    if row["body"] is None:
        raise precondition_failed(user_id)
    return JSONText(row["body"], headers={"ETag": etag(user_id, row["version"])})


@routes.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404, 412, 422, 428, 503),
)
async def delete_user(user_id: UserId, db: Db, if_match: IfMatch) -> None:
    """Delete a user; 412 if If-Match no longer holds its ETag."""
    versions = versions_named(if_match, user_id)
    row = await db.fetchrow(SQL.delete_user, user_id, versions)
    if row is None or (row["deleted_id"] is None and versions is None):  # none, or deleted as this ran
        raise _not_found(user_id)
    if row["deleted_id"] is None:
        raise precondition_failed(user_id)
