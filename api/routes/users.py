"""/users: each route runs one query file on the request's connection and shapes the row."""

from typing import Annotated

import asyncpg
from fastapi import Path, Query, Response, status
from pydantic import BeforeValidator
from starlette.exceptions import HTTPException

from api.db import Db
from api.problems import problem_responses
from api.queries import SQL
from api.routes import Routes
from api.schemas import UserCreate, UserPublic, UserUpdate

BIGINT_MAX = 2**63 - 1
PAGE_MAX = 1000
EMAIL_UNIQUE_INDEX = "users_email_key"


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
            "headers": {"Location": {"description": "/users/{id}", "schema": {"type": "string"}}},
            # OpenAPI links: how a client (or a fuzzer's stateful run) goes on from the user just made.
            "links": {
                link: {"operationId": operation, "parameters": {"user_id": "$response.body#/id"}}
                for link, operation in (
                    ("GetUser", "get_user"),
                    ("UpdateUser", "update_user"),
                    ("DeleteUser", "delete_user"),
                )
            },
        },
        **problem_responses(409, 413, 422, 503),
    },
)
async def create_user(body: UserCreate, db: Db) -> JSONText:
    """Create a user; 409 if the email is taken, compared case-insensitively."""
    row = await db.fetchrow(SQL.create_user, body.email, body.name)
    if row is None:
        raise _email_taken(body.email)
    return JSONText(row["body"], status.HTTP_201_CREATED, {"Location": f"/users/{row['id']}"})


@routes.get(
    "/users",
    response_model=list[UserPublic],
    responses={
        200: {
            "headers": {
                "Link": {
                    "description": '`</users?limit=N&after=LAST_ID>; rel="next"` when more users follow.',
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
) -> JSONText:
    """List users by ascending id, a page at a time (keyset pagination)."""
    page = await db.fetchrow(SQL.list_users, after, limit, read=True)
    assert page is not None  # an aggregate: always one row
    link = f'</users?limit={limit}&after={page["last_id"]}>; rel="next"'
    return JSONText(page["body"], headers={"Link": link} if page["more"] else None)


@routes.get("/users/{user_id}", response_model=UserPublic, responses=problem_responses(404, 422, 503))
async def get_user(user_id: UserId, db: Db) -> JSONText:
    """Get one user by id."""
    body = await db.fetchval(SQL.get_user, user_id, read=True)
    if body is None:
        raise _not_found(user_id)
    return JSONText(body)


@routes.patch("/users/{user_id}", response_model=UserPublic, responses=problem_responses(404, 409, 413, 422, 503))
async def update_user(user_id: UserId, body: UserUpdate, db: Db) -> JSONText:
    """Change a user's email and/or name."""
    try:
        updated = await db.fetchval(SQL.update_user, user_id, body.email, body.name)
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != EMAIL_UNIQUE_INDEX:
            raise
        raise _email_taken(body.email or "") from None
    if updated is None:
        raise _not_found(user_id)
    return JSONText(updated)


@routes.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404, 422, 503),
)
async def delete_user(user_id: UserId, db: Db) -> None:
    """Delete a user."""
    deleted = await db.fetchval(SQL.delete_user, user_id)
    if deleted is None:
        raise _not_found(user_id)
