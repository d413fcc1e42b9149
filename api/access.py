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
ANY_SCOPE = ""  # a valid token, whatever it grants: for a path no route serves, which the router answers 404
# What anyone may read (GET or HEAD): the probes, and the OpenAPI document with FastAPI's pages that show it.
OPEN_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs; None for a read of OPEN_PATHS alone, so that a path or method added later
    is closed until it is given its scope here."""
    # With its trailing slash too: the router answers it with a redirect to the open path, not a 401.
    if method in ("GET", "HEAD") and path.rstrip("/") in OPEN_PATHS:
        return None
    if path == "/users" or path.startswith("/users/"):
        return READ if method in ("GET", "HEAD") else WRITE  # WRITE alone: a client that only writes needs no more
    if path == "/metrics":
        return METRICS
    return ANY_SCOPE


def route_path(path: str, root_path: str) -> str:
    """The path as the router matches it: without the app's root path (uvicorn --root-path, a mount), as
    Starlette reads it, whose own function for it is private."""
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return "/" if root_path and path == root_path else path


def bearer_token(authorization: bytes | None) -> str | None:
    """The token of `Authorization: Bearer <token>`, the scheme's name in any case; None for another scheme or
    for no token at all."""
    if authorization is None:
        return None
    scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def challenge(status: int, detail: str, error: str | None = None, **attributes: str) -> Response:
    """A 401 or 403 problem with its WWW-Authenticate: the realm, then RFC 6750's error and its attributes."""
    parts = [REALM] + ([f'error="{error}"'] if error else []) + [f'{k}="{v}"' for k, v in attributes.items()]
    return problem(status, detail, headers={"WWW-Authenticate": ", ".join(parts)})


class Access:
    """The service's rule of who may do what, with its Verifier of tokens."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier

    async def check(
        self, method: str, path: str, authorization: bytes | None
    ) -> tuple[Principal | None, Response | None]:
        """Who the request's token speaks for, if anyone, and the refusal to answer with, if any; (None, None)
        when the request needs no token."""
        scope = required_scope(method, path)
        if scope is None:
            return None, None
        token = bearer_token(authorization)
        if token is None:  # no credentials: a bare challenge, with no error attribute (RFC 6750, 3.1)
            return None, challenge(401, "this request needs a bearer access token: Authorization: Bearer <token>")
        try:
            principal = await self.verifier.verify(token)
        except InvalidToken as refused:
            description = str(refused)
            return None, challenge(401, f"the access token was refused: {description}", "invalid_token",
                                   error_description=description)  # fmt: skip
        if scope and scope not in principal.scopes:
            return principal, challenge(403, f"the access token does not grant the scope {scope}",
                                        "insufficient_scope", scope=scope)  # fmt: skip
        return principal, None
