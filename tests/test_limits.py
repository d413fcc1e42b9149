"""Bodies over 64 KiB are refused with 413 before any route runs."""

from collections.abc import AsyncIterator

import httpx
import pytest

from api.limits import MAX_BODY_BYTES
from tests.helpers import assert_problem, create

pytestmark = pytest.mark.anyio


def padded_body(size: int) -> bytes:
    head = b'{"email": "big@example.com", "name": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


async def chunks(body: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def assert_413(response: httpx.Response) -> None:
    assert str(MAX_BODY_BYTES) in assert_problem(response, 413)["detail"]


async def test_a_declared_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    assert_413(await client.post("/users", content=padded_body(MAX_BODY_BYTES + 1)))


async def test_a_streamed_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    # No Content-Length: the limit is enforced while the body arrives.
    response = await client.post("/users", content=chunks(padded_body(MAX_BODY_BYTES * 2)))

    assert_413(response)


async def test_an_oversized_body_on_delete_changes_nothing(client: httpx.AsyncClient) -> None:
    user = await create(client, "stay@example.com", "Stay")

    response = await client.request("DELETE", f"/users/{user['id']}", content=b"x" * (MAX_BODY_BYTES + 1))

    assert_413(response)
    assert (await client.get(f"/users/{user['id']}")).status_code == 200


async def test_a_body_at_the_limit_is_read(client: httpx.AsyncClient) -> None:
    # Exactly 64 KiB gets through the limit; the 422 comes from the name being too long, as it should.
    response = await client.post(
        "/users", content=padded_body(MAX_BODY_BYTES), headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "name"]
