"""POST /users with an Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): a retry creates nothing twice.

One statement (sql/create_user_once.sql) decides whether the key is new, kept, or being answered, and
creates the user when it is new; two more query files settle the rare races of concurrent first uses.
A key is its client's own: kept with the issuer and subject of the request's token, so that another
client sending the same key gets its own answer, never the first one's.
"""

from typing import Annotated, Any

from fastapi import Header, Response, status
from starlette.exceptions import HTTPException

from api.db import Conflict, Db
from api.problems import problem
from api.queries import SQL
from api.routes.responses import created, email_taken
from api.schemas import UserCreate
from api.tokens import Principal

IDEMPOTENCY_KEY_INDEX = "idempotency_keys_pkey"
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


def owner(principal: Principal | None) -> str:
    """Whose keys these are, as idempotency_keys.principal holds it: `<iss> <sub>`, or '' with no token."""
    return "" if principal is None else f"{principal.issuer} {principal.subject}"


def unquoted(key: str) -> str:
    """The key itself: `"abc"` and `abc` name the same one."""
    return key[1:-1] if key[0] == '"' else key  # the pattern let a leading quote in only as a pair


async def create_once(db: Db, key: str, body: UserCreate, principal: Principal | None) -> Response:
    """create_user_once decides: created, kept (replayed or 422), or in flight (409); races end in a second look."""
    client = owner(principal)
    for _ in range(2):
        try:
            row = await db.fetchrow(SQL.create_user_once, key, body.email, body.name, client)
        except Conflict as error:
            if error.constraint != IDEMPOTENCY_KEY_INDEX:
                raise
            row = None  # the key was kept meanwhile, or over 24 hours ago and not yet removed
        else:
            if row is None:
                raise RuntimeError("create_user_once.sql returned no row; it returns one whatever the outcome")
            if row["outcome"] == "created":
                return created(row)
            if row["outcome"] == "kept":
                return _replayed(row, key)
            if row["outcome"] == "in_flight":
                raise _in_flight(key)
        # Taken since the statement began: by this key's first request, or another user has the email.
        found = await db.fetchrow(SQL.find_idempotency_key, key, body.email, body.name, client, read=True)
        if found is not None:
            return _replayed(found, key)
        if row is not None:
            raise email_taken(body.email)
        await db.fetchval(SQL.forget_idempotency_key, key, client)  # kept over 24 hours ago: free it, try again
    raise _in_flight(key)


def _replayed(row: Any, key: str) -> Response:
    if not row["request_matches"]:
        detail = f"the Idempotency-Key {key!r} was used for another request within 24 hours; send a new key"
        error = {"loc": ["header", "Idempotency-Key"], "msg": detail, "type": "idempotency_key_reused"}
        return problem(status.HTTP_422_UNPROCESSABLE_CONTENT, detail, errors=[error])
    return created(row, {"Idempotent-Replayed": "true"})


def _in_flight(key: str) -> HTTPException:
    detail = f"a request with the Idempotency-Key {key!r} is being answered; retry once it is"
    return HTTPException(status.HTTP_409_CONFLICT, detail, headers={"Retry-After": "1"})
