"""What the OpenAPI document says beyond the routes' signatures: headers, links, and the statuses of each route.

Kept apart from the handlers so that each reads as what it does. tests/openapi.json holds the document
as served, byte for byte; a test compares.
"""

from typing import Any

from fastapi import FastAPI

from api.access import REALM, required_scope
from api.problems import PROBLEM_JSON, RETRY_AFTER_HEADER, problem_responses

# Read from the request's headers by get_user itself and documented here, rather than declared as a
# FastAPI `Header` parameter: solving and validating a parameter costs a get-one CPU for a header any
# string of which is acceptable (docs/levers.md, "If-None-Match read without a parameter").
IF_NONE_MATCH_PARAMETER = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETags the client holds; 304 without a body when one is current.",
    # As FastAPI documents an optional `Header` parameter: the document is what it was with one.
    "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "If-None-Match"},
}
TOKEN_SCHEMA = {"type": "string", "pattern": r"^1[0-9a-f]{16}$"}
CONSISTENCY_TOKEN_PARAMETER = {
    "name": "Consistency-Token",
    "in": "header",
    "required": False,
    "description": "A write's Consistency-Token, sent back as it was: the answer then includes that write (or later "
    "ones). Without it, a read may be up to REPLICA_MAX_LAG (1 s) stale where reads go to standbys. 422 if it is "
    "not a token this service wrote.",
    "schema": TOKEN_SCHEMA | {"title": "Consistency-Token"},
}
CONSISTENCY_TOKEN_HEADER = {
    "Consistency-Token": {
        "description": "Where reads go to standbys: an opaque token naming this write. Send it back on reads as "
        "`Consistency-Token` to read this write or a later state.",
        "schema": TOKEN_SCHEMA,
    }
}
ETAG_HEADER = {
    "ETag": {
        "description": 'The user\'s strong entity tag, `"<id>-<version>"`: it changes whenever the user does.',
        "schema": {"type": "string", "pattern": '^"[0-9]+-[0-9]+"$'},
    }
}
LOCATION_HEADER = {
    "Location": {"description": "/users/{id}", "schema": {"type": "string"}},
    # The ETag of a 201 is the new user's, not /users's: Content-Location says so (RFC 9110, 8.7).
    "Content-Location": {
        "description": "/users/{id}, the resource the body and ETag are of.",
        "schema": {"type": "string"},
    },
}
REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "`true` when this 201 is the one kept for the Idempotency-Key, sent again.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
LINK_HEADER = {
    "Link": {
        "description": '`</users?limit=N&after=LAST_ID>; rel="next"` when more users follow; never with `email`.',
        "schema": {"type": "string"},
    }
}

CREATE_USER: dict[int | str, dict[str, Any]] = {
    201: {
        "headers": LOCATION_HEADER | ETAG_HEADER | REPLAYED_HEADER | CONSISTENCY_TOKEN_HEADER,
        # OpenAPI links: how a client (or a fuzzer's stateful run) goes on from the user just made,
        # a write sending back the ETag it was given as its If-Match.
        "links": {
            "GetUser": {"operationId": "get_user", "parameters": {"user_id": "$response.body#/id"}},
            **{
                link: {
                    "operationId": operation,
                    "parameters": {"user_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"},
                }
                for link, operation in (("UpdateUser", "update_user"), ("DeleteUser", "delete_user"))
            },
        },
    },
    **problem_responses(409, 413, 422, 503),
    # 409 also while another request with the Idempotency-Key is answered, with Retry-After then.
    409: problem_responses(409)[409] | {"headers": RETRY_AFTER_HEADER},
}
LIST_USERS: dict[int | str, dict[str, Any]] = {200: {"headers": LINK_HEADER}, **problem_responses(422, 503)}
GET_USER: dict[int | str, dict[str, Any]] = {
    200: {"headers": ETAG_HEADER},
    304: {"description": "Not Modified: the If-None-Match held the current ETag; no body.", "headers": ETAG_HEADER},
    **problem_responses(404, 422, 503),
}
UPDATE_USER: dict[int | str, dict[str, Any]] = {
    200: {"headers": ETAG_HEADER | CONSISTENCY_TOKEN_HEADER},
    **problem_responses(404, 409, 412, 413, 422, 428, 503),
}
DELETE_USER: dict[int | str, dict[str, Any]] = {
    204: {"description": "Deleted.", "headers": CONSISTENCY_TOKEN_HEADER},
    **problem_responses(404, 412, 422, 428, 503),
}

TRACERESPONSE_HEADER = {
    "traceresponse": {
        "description": "W3C Trace Context: version, this request's trace id (the incoming traceparent's, or new), "
        "span id and flags. Its trace id names the request in the service's logs.",
        "schema": {"type": "string", "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$"},
    }
}


# With AUTH_ISSUER: the bearer scheme (http bearer: a generated client's AuthenticatedClient sends it),
# the scopes each operation needs, and its 401 and 403 with their challenge.
BEARER = "bearerAuth"
SECURITY_SCHEMES = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An OAuth 2.0 access token (RFC 9068) from the identity provider the service trusts "
        "(AUTH_ISSUER), holding the operation's scope in `scope` or `scp`.",
    }
}
WWW_AUTHENTICATE_HEADER = {
    "WWW-Authenticate": {
        "description": f"RFC 6750's challenge: `{REALM}`, with `error` and `error_description` (invalid_token) "
        "or `error` and `scope` (insufficient_scope) when a token was sent.",
        "schema": {"type": "string"},
    }
}
REFUSALS = {
    "401": "Unauthorized: no bearer token, or one that fails a check.",
    "403": "Forbidden: the token does not grant the operation's scope.",
}


def _secure(path: str, method: str, operation: dict[str, Any]) -> None:
    scope = required_scope(method.upper(), path)
    if scope is None:
        return
    operation["security"] = [{BEARER: [scope]}]
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for code, description in REFUSALS.items():
        operation["responses"][code] = {"description": description, "headers": dict(WWW_AUTHENTICATE_HEADER)}
        operation["responses"][code]["content"] = problem


def document_every_response(app: FastAPI, authenticated: bool = False) -> None:
    """Every response documented with the `traceresponse` it carries; errors under application/problem+json;
    with `authenticated`, the bearer scheme and what each operation needs of it."""
    build = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            if authenticated:
                schema["components"]["securitySchemes"] = SECURITY_SCHEMES
            for route, path in schema["paths"].items():
                for method, operation in path.items():
                    if authenticated:
                        _secure(route, method, operation)
                    for code, response in operation.get("responses", {}).items():
                        response["headers"] = response.get("headers", {}) | TRACERESPONSE_HEADER
                        content = response.get("content", {})
                        if code[0] in "45" and "application/json" in content:
                            content[PROBLEM_JSON] = content.pop("application/json")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
