"""The HTTP ceiling: the same paths and response bodies as users-api, pre-encoded bytes, no database.

BENCH_BODIES names a JSON file the harness writes from real users-api responses:
{"user": <one user>, "page": <list of 100 users>}. What this app serves per second is the most the
framework stack (FastAPI, Starlette, uvicorn) can do on this machine for those bodies.
"""

import json
import os
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query, Response

_bodies = json.loads(Path(os.environ["BENCH_BODIES"]).read_text(encoding="utf-8"))
USER = json.dumps(_bodies["user"], separators=(",", ":")).encode()
PAGE = json.dumps(_bodies["page"], separators=(",", ":")).encode()
FOUND = b"[" + USER + b"]"  # a lookup by email: a page of one user
LOCATION = f"/users/{_bodies['user']['id']}"

app = FastAPI()


@app.post("/users", status_code=201)
async def create_user() -> Response:
    return Response(USER, status_code=201, media_type="application/json", headers={"Location": LOCATION})


@app.get("/users/{user_id}")
async def get_user(user_id: int) -> Response:
    return Response(USER, media_type="application/json")


@app.get("/users")
async def list_users(
    limit: Annotated[int, Query(ge=1, le=1000)] = 50, after: Annotated[int, Query(ge=0)] = 0, email: str | None = None
) -> Response:
    if email is not None:
        return Response(FOUND, media_type="application/json")
    link = f'</users?limit={limit}&after={after + limit}>; rel="next"'
    return Response(PAGE, media_type="application/json", headers={"Link": link})
