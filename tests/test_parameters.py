"""What the /users routes read from a request beyond FastAPI's parameters: a header, without Starlette's Headers."""

import pytest
from fastapi import Request

from api.routes.parameters import header


def request_with(*headers: tuple[bytes, bytes]) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/users/1", "headers": list(headers)})


@pytest.mark.parametrize(
    "headers",
    [
        (),
        ((b"host", b"api"),),
        ((b"if-none-match", b'"1-1"'),),
        ((b"host", b"api"), (b"if-none-match", b'"1-1"'), (b"if-none-match", b'"1-2"')),  # two lines: the first
        ((b"if-none-match", b'"caf\xe9"'),),  # latin-1, as Starlette decodes header values
        ((b"if-none-match", b""),),
    ],
)
def test_a_header_reads_as_starlette_reads_it(headers: tuple[tuple[bytes, bytes], ...]) -> None:
    request = request_with(*headers)
    assert header(request, b"if-none-match") == request.headers.get("if-none-match")
