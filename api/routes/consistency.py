"""The Consistency-Token: what a write's 2xx answer carries while reads go to standbys, and what a read sends
back to see that write (api/replicas.py)."""

from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError

from api.db import Database
from api.replicas import lsn_of
from api.routes.parameters import header

Ts = TypeVarTuple("Ts")
R = TypeVar("R", bound=Response)
T = TypeVar("T")

HEADER = "Consistency-Token"


def lsn_asked(request: Request) -> int:
    """The WAL position the request's Consistency-Token carries; 0 without one. Checked with or without
    standbys, so that a client learns of a token it mangled wherever it sends it."""
    token = header(request, b"consistency-token")
    if token is None:
        return 0
    lsn = lsn_of(token)
    if lsn is None:
        msg = "not a token this service wrote: send back a write's Consistency-Token as it was, or none"
        raise RequestValidationError([{"loc": ("header", HEADER), "msg": msg, "type": "value_error"}])
    return lsn


def read(
    db: Database,
    request: Request,
    statement: Callable[[Database, *Ts], Awaitable[T]],
    *args: *Ts,
    coalesced: bool = False,
) -> Awaitable[T]:
    """`statement` on a standby that has the writes the request's token names, or on the primary; `coalesced`:
    a read coalesced with others of its kind, sent to the standby whose turn it is (api/replicas.py). Without
    standbys, `statement`'s own awaitable: the route awaits it with no frame of this module between."""
    lsn = lsn_asked(request)
    if db.replicas is None:
        return statement(db, *args)
    return db.replicas.read(statement, lsn, *args, coalesced=coalesced)


async def stamped(db: Database, response: R) -> R:
    """`response` to a write, with the write's Consistency-Token while reads go to standbys."""
    if db.replicas is not None and response.status_code < 300:
        response.headers[HEADER] = await db.replicas.token()
    return response
