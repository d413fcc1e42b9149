"""Conditional requests (RFC 9110, 13): a user's ETag, 304 on If-None-Match, 412 and 428 on If-Match."""

import anyio
import httpx
import psycopg
import pytest

from api.conditions import etag, none_match, versions_named
from tests.helpers import ClientFactory, assert_problem, create

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("if_match", "versions"),
    [
        (None, None),
        ("*", None),
        ('"7-3"', [3]),
        ('"7-3", "7-4"', [3, 4]),
        ('W/"7-3"', []),  # If-Match compares strongly: a weak tag never matches
        ('"8-3"', []),  # another user's tag
        ('"7-x"', []),
        ("garbage", []),
        ('"7-99999999999999999999"', []),  # past bigint: no version of any user
        ('"7-03"', []),  # strong comparison is of the characters: not the tag "7-3"
        ('"7-\u00b2"', []),  # a superscript two is a digit to str.isdigit, not to int()
    ],
)
def test_if_match_names_versions_of_this_user_only(if_match: str | None, versions: list[int] | None) -> None:
    assert versions_named(if_match, 7) == versions


@pytest.mark.parametrize(
    ("if_none_match", "matches"),
    [(None, False), ('"7-3"', True), ('W/"7-3"', True), ('"7-2", "7-3"', True), ('"7-2"', False), ("*", True)],
)
def test_if_none_match_compares_weakly(if_none_match: str | None, matches: bool) -> None:
    assert none_match(if_none_match, etag(7, 3)) is matches


async def test_every_single_user_response_carries_an_etag_that_moves_with_each_change(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/users", json={"email": "tag@example.com", "name": "Tag"})
    user_id = created.json()["id"]
    fetched = await client.get(f"/users/{user_id}")
    patched = await client.patch(f"/users/{user_id}", json={"name": "Tagged"})
    fetched_again = await client.get(f"/users/{user_id}")

    assert created.headers["etag"] == fetched.headers["etag"] == f'"{user_id}-1"'
    assert patched.headers["etag"] == fetched_again.headers["etag"] == f'"{user_id}-2"'


async def test_a_change_made_by_hand_moves_the_etag_and_a_write_of_the_same_values_does_not(
    client: httpx.AsyncClient, postgresql: psycopg.Connection
) -> None:
    user = await create(client, "byhand@example.com", "By Hand")

    postgresql.execute("UPDATE users SET name = 'Changed by a DBA' WHERE id = %s", (user["id"],))
    postgresql.execute("UPDATE users SET name = name WHERE id = %s", (user["id"],))
    postgresql.commit()

    assert (await client.get(f"/users/{user['id']}")).headers["etag"] == f'"{user["id"]}-2"'


async def test_get_with_the_current_etag_in_if_none_match_is_304_without_a_body(client: httpx.AsyncClient) -> None:
    user = await create(client, "cached@example.com")
    tag = (await client.get(f"/users/{user['id']}")).headers["etag"]

    unchanged = await client.get(f"/users/{user['id']}", headers={"If-None-Match": f'"{user["id"]}-0", {tag}'})
    await client.patch(f"/users/{user['id']}", json={"name": "Changed"})
    changed = await client.get(f"/users/{user['id']}", headers={"If-None-Match": tag})

    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == tag
    assert changed.status_code == 200 and changed.json()["name"] == "Changed"
    assert changed.headers["etag"] != tag


async def test_patch_and_delete_with_a_stale_if_match_are_412_and_change_nothing(client: httpx.AsyncClient) -> None:
    user = await create(client, "stale@example.com", "Stale")
    stale = (await client.get(f"/users/{user['id']}")).headers["etag"]
    await client.patch(f"/users/{user['id']}", json={"name": "Moved on"})

    patched = await client.patch(f"/users/{user['id']}", json={"name": "Lost update"}, headers={"If-Match": stale})
    deleted = await client.delete(f"/users/{user['id']}", headers={"If-Match": stale})

    assert "changed since" in assert_problem(patched, 412)["detail"]
    assert_problem(deleted, 412)
    assert (await client.get(f"/users/{user['id']}")).json()["name"] == "Moved on"


async def test_patch_and_delete_with_the_current_if_match_or_a_star_write(client: httpx.AsyncClient) -> None:
    user = await create(client, "current@example.com")
    tag = (await client.get(f"/users/{user['id']}")).headers["etag"]

    patched = await client.patch(f"/users/{user['id']}", json={"name": "Once"}, headers={"If-Match": tag})
    starred = await client.patch(f"/users/{user['id']}", json={"name": "Twice"}, headers={"If-Match": "*"})
    deleted = await client.delete(f"/users/{user['id']}", headers={"If-Match": starred.headers["etag"]})

    assert (patched.status_code, starred.status_code, deleted.status_code) == (200, 200, 204)
    assert patched.headers["etag"] != tag


async def test_if_match_on_an_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.patch("/users/424242", json={"name": "X"}, headers={"If-Match": '"424242-1"'}), 404)
    assert_problem(await client.delete("/users/424242", headers={"If-Match": "*"}), 404)


async def test_of_16_concurrent_patches_with_one_if_match_exactly_one_writes(client_factory: ClientFactory) -> None:
    async with client_factory(pool_max_size=16) as client:
        user = await create(client, "contended@example.com")
        tag = (await client.get(f"/users/{user['id']}")).headers["etag"]
        answers: list[httpx.Response] = []

        async def patch(n: int) -> None:
            body = {"name": f"Writer {n}"}
            answers.append(await client.patch(f"/users/{user['id']}", json=body, headers={"If-Match": tag}))

        async with anyio.create_task_group() as tasks:
            for n in range(16):
                tasks.start_soon(patch, n)
        final = await client.get(f"/users/{user['id']}")

    assert sorted(answer.status_code for answer in answers) == [200] + [412] * 15
    winner = next(answer for answer in answers if answer.status_code == 200)
    assert final.json() == winner.json() and final.headers["etag"] == f'"{user["id"]}-2"'


async def test_require_if_match_makes_a_missing_one_428(client_factory: ClientFactory) -> None:
    async with client_factory(require_if_match=True) as client:
        user = await create(client, "required@example.com")
        tag = (await client.get(f"/users/{user['id']}")).headers["etag"]

        patched = await client.patch(f"/users/{user['id']}", json={"name": "Unconditional"})
        deleted = await client.delete(f"/users/{user['id']}")
        conditional = await client.patch(
            f"/users/{user['id']}", json={"name": "Conditional"}, headers={"If-Match": tag}
        )

    assert "If-Match" in assert_problem(patched, 428)["detail"]
    assert_problem(deleted, 428)
    assert conditional.status_code == 200 and conditional.json()["name"] == "Conditional"
