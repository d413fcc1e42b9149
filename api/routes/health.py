"""Probes: /health says the process serves, /ready says it can reach PostgreSQL."""

import asyncio
import logging

from pydantic import BaseModel

from api.db import Db
from api.problems import Unavailable, problem_responses
from api.queries import SQL
from api.routes import Routes

log = logging.getLogger("users_api")
routes = Routes(tags=["probes"])


class Status(BaseModel):
    status: str


@routes.get("/health", response_model=Status)
async def health() -> Status:
    """Liveness: answers without touching the database."""
    return Status(status="ok")


@routes.get("/ready", response_model=Status, responses=problem_responses(503))
async def ready(db: Db) -> Status:
    """Readiness: a pooled SELECT 1 within READY_TIMEOUT seconds, else 503."""
    try:
        async with asyncio.timeout(db.ready_timeout):
            await db.fetchval(SQL.ping, read=True)
    except Exception as error:  # any failure means not ready; the reason goes to the log, not the client
        log.warning("not ready: %s: %s", type(error).__name__, error)
        raise Unavailable(f"the database did not answer within {db.ready_timeout:g}s") from None
    return Status(status="ready")
