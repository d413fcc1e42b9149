"""Who may do what: the scope each request needs, and its bearer token checked for it before it is routed.

Decided by the edge (api/edge.py) before any route runs, so that a refused request costs no body read,
no validation and no database round trip: an unauthenticated POST with a malformed body is a 401, not a
422. The answers are RFC 6750's, as problem details: 401 with a bare challenge when no token was sent,
401 with `error="invalid_token"` when one fails a check, 403 with `error="insufficient_scope"`.
"""

from starlette.responses import Response

from api.problems import problem
from api.tokens import InvalidToken, Principal, Verifier

REALM = 'Bearer realm="users-api"'
READ, WRITE, METRICS = "users:read", "users:write", "metrics:read"


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs; None for what is open to all (probes, the OpenAPI document, the docs)
    and for a method no route takes, which the router answers with its 405."""
    if path == "/users" or path.startswith("/users/"):
        if method == "GET":
            return READ
        if method in ("POST", "PATCH", "DELETE"):
            return WRITE  # not READ as well: a client that only writes needs nothing more
        return None
    if path == "/metrics" and method == "GET":
        return METRICS
    return None


def bearer_token(authorization: bytes | None) -> str | None:
    """The token of `Authorization: Bearer <token>`, the scheme's name in any case; None for another scheme."""
    if authorization is None:
        return None
    scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def challenge(status: int, detail: str, error: str | None = None, **attributes: str) -> Response:
    """A 401 or 403 problem with its WWW-Authenticate: the realm, then RFC 6750's error and its attributes."""
    parts = [REALM] + ([f'error="{error}"'] if error else []) + [f'{k}="{v}"' for k, v in attributes.items()]
    return problem(status, detail, headers={"WWW-Authenticate": ", ".join(parts)})


class Access:
    """The service's rule of who may do what, with its Verifier of tokens."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier

    async def check(self, method: str, path: str, authorization: bytes | None) -> Principal | Response | None:
        """The principal the request's token speaks for; a refusal to answer with; None if it needs no token."""
        scope = required_scope(method, path)
        if scope is None:
            return None
        token = bearer_token(authorization)
        if token is None:  # no credentials: a bare challenge, with no error attribute (RFC 6750, 3.1)
            return challenge(401, "this request needs a bearer access token: Authorization: Bearer <token>")
        try:
            principal = await self.verifier.verify(token)
        except InvalidToken as refused:
            description = str(refused)
            return challenge(401, f"the access token was refused: {description}", "invalid_token",
                             error_description=description)  # fmt: skip
        if scope not in principal.scopes:
            return challenge(403, f"the access token does not grant the scope {scope}", "insufficient_scope",
                             scope=scope)  # fmt: skip
        return principal
