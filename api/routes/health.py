"""Probes: /health says the process serves, /ready says it can reach PostgreSQL."""

import asyncio
import logging

from fastapi import Request, Response
from pydantic import BaseModel

from api.db import Db, Unavailable
from api.problems import log_prepared_statements_lost, problem_responses, unavailable_response
from api.queries import SQL
from api.routes import Routes

log = logging.getLogger(__name__)
routes = Routes(tags=["probes"])


class Status(BaseModel):
    status: str


@routes.get("/health", response_model=Status)
async def health() -> Status:
    """Liveness: answers without touching the database."""
    return Status(status="ok")


@routes.get("/ready", response_model=Status, responses=problem_responses(503))
async def ready(db: Db, request: Request) -> Status | Response:
    """Readiness: a pooled SELECT 1 within READY_TIMEOUT seconds, else 503."""
    keys = request.state.keys  # with AUTH_ISSUER, not ready until its keys are fetched: no token could be verified
    if keys is not None and not keys.loaded:
        return unavailable_response("no_signing_keys")
    try:
        async with asyncio.timeout(db.ready_timeout):
            await db.fetchval(SQL.ping, read=True)
    except Exception as error:  # any failure means not ready; the reason goes to the log, not the client
        if isinstance(error, Unavailable) and error.reason == "prepared_statements_lost":  # a pooler, said apart
            log_prepared_statements_lost(error)
            return unavailable_response(error.reason)
        log.warning("not ready: %s: %s", type(error).__name__, error)
        return unavailable_response("database_unreachable", f"the database did not answer within {db.ready_timeout:g}s")
    return Status(status="ready")
