"""raw-minimal: the least FastAPI app that runs users-api's query files; users-api's own cost is measured against it.

Nothing more and nothing less: FastAPI; an asyncpg pool created in the
lifespan with reset off and TimeZone=UTC (sized as users-api's, 2 to 10); each route, declared on
the app, calls pool.fetchrow/fetchval/fetch with the text of the sql/ file and returns PostgreSQL's
JSON text as a Response; no dependency, no queue, no middleware, no custom validators, default
error handling. A page sets Link from the query's own answer, as users-api's does, so that both
answer the workload alike. DATABASE_URL names the database.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from api.queries import SQL


async def no_reset(conn: asyncpg.Connection) -> None:
    """Reset off: no query when a connection goes back to the pool (users-api's pool does the same)."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=2, max_size=10, reset=no_reset, server_settings={"TimeZone": "UTC"}
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


class UserCreate(BaseModel):
    email: str
    name: str


@app.post("/users", status_code=201)
async def create_user(body: UserCreate, request: Request) -> Response:
    row = await request.app.state.pool.fetchrow(SQL.create_user, body.email, body.name)
    if row is None:
        return Response(status_code=409)
    return Response(row["body"], 201, {"Location": f"/users/{row['id']}"}, media_type="application/json")


@app.get("/users/{user_id}")
async def get_user(user_id: int, request: Request) -> Response:
    row = await request.app.state.pool.fetchrow(SQL.get_user, user_id)
    if row is None:
        return Response(status_code=404)
    return Response(row["body"], media_type="application/json")


@app.get("/users")
async def list_users(request: Request, limit: int = 50, after: int = 0, email: str | None = None) -> Response:
    if email is not None:
        found = await request.app.state.pool.fetchval(SQL.find_users_by_email, email, after)
        return Response(found, media_type="application/json")
    page = await request.app.state.pool.fetchrow(SQL.list_users, after, limit)
    headers = {"Link": f'</users?limit={limit}&after={page["last_id"]}>; rel="next"'} if page["more"] else None
    return Response(page["body"], headers=headers, media_type="application/json")
