"""How /users answers: PostgreSQL's JSON text with the headers Starlette would give it."""

import pytest
from fastapi import Response

from api.routes.responses import JSONText


@pytest.mark.parametrize(
    ("body", "status", "headers"),
    [
        ('{"id":1}', 200, None),
        ('{"id":1}', 200, {"ETag": '"1-1"'}),
        ("[]", 200, {}),
        ("[{}]", 200, {"Link": '</users?limit=1&after=1>; rel="next"'}),
        ('{"é":"ü"}', 201, {"Location": "/users/1", "Content-Location": "/users/1", "ETag": '"1-1"'}),
    ],
)
def test_json_text_has_the_headers_starlette_gives_json(body: str, status: int, headers: dict[str, str] | None) -> None:
    ours = JSONText(body, status, headers)
    starlettes = Response(body, status, headers, media_type="application/json")
    assert ours.body == starlettes.body
    assert ours.raw_headers == starlettes.raw_headers
