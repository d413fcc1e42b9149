"""What the OpenAPI document says beyond the routes' signatures: headers, links, and the statuses of each route.

Kept apart from the handlers so that each reads as what it does. tests/openapi.json holds the document
as served, byte for byte; a test compares.
"""

from typing import Any

from fastapi import FastAPI

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
        "headers": LOCATION_HEADER | ETAG_HEADER | REPLAYED_HEADER,
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
    200: {"headers": ETAG_HEADER},
    **problem_responses(404, 409, 412, 413, 422, 428, 503),
}
DELETE_USER = problem_responses(404, 412, 422, 428, 503)

TRACERESPONSE_HEADER = {
    "traceresponse": {
        "description": "W3C Trace Context: version, this request's trace id (the incoming traceparent's, or new), "
        "span id and flags. Its trace id names the request in the service's logs.",
        "schema": {"type": "string", "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$"},
    }
}


def document_every_response(app: FastAPI) -> None:
    """Every response documented with the `traceresponse` it carries; errors under application/problem+json."""
    build = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema["paths"].values():
                for operation in path.values():
                    for code, response in operation.get("responses", {}).items():
                        response["headers"] = response.get("headers", {}) | TRACERESPONSE_HEADER
                        content = response.get("content", {})
                        if code[0] in "45" and "application/json" in content:
                            content[PROBLEM_JSON] = content.pop("application/json")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
