"""/users: each handler runs its query file (an idempotent create, api/routes/idempotent.py, up to three; a
get-one or a lookup by email, one shared with the others waiting at once, api/coalesced.py) and answers
with the row PostgreSQL shaped. What they take is api/routes/parameters.py's; what the OpenAPI
document says beyond their signatures, api/routes/openapi.py's.
"""

from collections.abc import Awaitable

import asyncpg
from fastapi import Request, Response, status

from api.conditions import etag, none_match, precondition_failed, versions_named
from api.db import Conflict, Database, Db
from api.queries import SQL
from api.routes import Routes, openapi
from api.routes.consistency import read, stamped
from api.routes.idempotent import IdempotencyKey, create_once, unquoted
from api.routes.parameters import After, EmailQuery, IfMatch, Limit, UserId, header
from api.routes.responses import JSONText, created, email_taken, not_found
from api.schemas import UserCreate, UserPublic, UserUpdate

EMAIL_UNIQUE_INDEX = "users_email_key"

routes = Routes(tags=["users"])


@routes.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserPublic, responses=openapi.CREATE_USER)
async def create_user(body: UserCreate, db: Db, request: Request, idempotency_key: IdempotencyKey = None) -> Response:
    """Create a user; 409 if the email is taken, compared case-insensitively."""
    if idempotency_key is not None:
        principal = request.state.principal if "principal" in request.scope.get("state", {}) else None
        return await stamped(db, await create_once(db, unquoted(idempotency_key), body, principal))
    if db.creates is not None:
        row = await db.creates.read(body.email, body.name)
    else:
        row = await db.fetchrow(SQL.create_user, body.email, body.name)
    if row is None:
        raise email_taken(body.email)
    return await stamped(db, created(row))


@routes.get(
    "/users",
    response_model=list[UserPublic],
    responses=openapi.LIST_USERS,
    openapi_extra={"parameters": [openapi.CONSISTENCY_TOKEN_PARAMETER]},
)
async def list_users(
    db: Db, request: Request, limit: Limit = 50, after: After = 0, email: EmailQuery = None
) -> JSONText:
    """List users by ascending id, a page at a time (keyset pagination), or find one by email."""
    if email is not None:
        return JSONText(await read(db, request, _found_by_email, email, after, coalesced=True))
    page = await read(db, request, _page, after, limit)
    if page is None:
        raise RuntimeError("list_users.sql returned no row; an aggregate returns one")
    link = f'</users?limit={limit}&after={page["last_id"]}>; rel="next"'
    return JSONText(page["body"], headers={"Link": link} if page["more"] else None)


async def _found_by_email(db: Database, email: str, after: int) -> str:
    if db.users_by_email is not None:
        found = await db.users_by_email.read(email, after)
        return found["body"] if found is not None else "[]"
    return await db.fetchval(SQL.find_users_by_email, email, after, read=True)  # type: ignore[no-any-return]


# The reads return their statement's awaitable for the route to await, with no coroutine of their own
# (docs/levers.md, "a get-one's path trimmed").
def _page(db: Database, after: int, limit: int) -> Awaitable[asyncpg.Record | None]:
    return db.fetchrow(SQL.list_users, after, limit, read=True)


def _user(db: Database, user_id: int) -> Awaitable[asyncpg.Record | None]:
    if db.users_by_id is not None:
        return db.users_by_id.read(user_id)
    return db.fetchrow(SQL.get_user, user_id, read=True)


@routes.get(
    "/users/{user_id}",
    response_model=UserPublic,
    responses=openapi.GET_USER,
    openapi_extra={"parameters": [openapi.IF_NONE_MATCH_PARAMETER, openapi.CONSISTENCY_TOKEN_PARAMETER]},
)
async def get_user(user_id: UserId, db: Db, request: Request) -> Response:
    """Get one user by id; 304 if If-None-Match holds its current ETag."""
    row = await read(db, request, _user, user_id, coalesced=True)
    if row is None:
        raise not_found(user_id)
    tag = etag(user_id, row["version"])
    if none_match(header(request, b"if-none-match"), tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": tag})
    return JSONText(row["body"], headers={"ETag": tag})


@routes.patch("/users/{user_id}", response_model=UserPublic, responses=openapi.UPDATE_USER)
async def update_user(user_id: UserId, body: UserUpdate, db: Db, if_match: IfMatch) -> JSONText:
    """Change a user's email and/or name; 412 if If-Match no longer holds its ETag."""
    versions = versions_named(if_match, user_id)
    try:
        row = await db.fetchrow(SQL.update_user, user_id, body.email, body.name, versions)
    except Conflict as error:
        if error.constraint != EMAIL_UNIQUE_INDEX:
            raise
        raise email_taken(body.email or "") from None
    if row is None or (row["body"] is None and versions is None):  # none, or deleted as this ran
        raise not_found(user_id)
    if row["body"] is None:
        raise precondition_failed(user_id)
    return await stamped(db, JSONText(row["body"], headers={"ETag": etag(user_id, row["version"])}))


@routes.delete(
    "/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=openapi.DELETE_USER
)
async def delete_user(user_id: UserId, db: Db, if_match: IfMatch) -> Response:
    """Delete a user; 412 if If-Match no longer holds its ETag."""
    versions = versions_named(if_match, user_id)
    row = await db.fetchrow(SQL.delete_user, user_id, versions)
    if row is None or (row["deleted_id"] is None and versions is None):  # none, or deleted as this ran
        raise not_found(user_id)
    if row["deleted_id"] is None:
        raise precondition_failed(user_id)
    return await stamped(db, Response(status_code=status.HTTP_204_NO_CONTENT))
