"""The /users contract, over HTTP against the migrated database."""

import re
from datetime import datetime, timedelta

import anyio
import httpx
import pytest

from api.schemas import UserPublic
from tests.helpers import assert_problem, create

pytestmark = pytest.mark.anyio

RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)")
ADA = {"email": "ada@example.com", "name": "Ada Lovelace"}


async def test_create_returns_the_user_and_its_location(client: httpx.AsyncClient) -> None:
    response = await client.post("/users", json=ADA)

    assert response.status_code == 201
    user = response.json()
    assert set(user) == {"id", "email", "name", "created_at", "updated_at"}
    assert user["email"] == ADA["email"] and user["name"] == ADA["name"]
    assert isinstance(user["id"], int) and user["id"] >= 1
    assert response.headers["location"] == f"/users/{user['id']}"
    for stamp in ("created_at", "updated_at"):
        assert RFC3339_UTC.fullmatch(user[stamp]), user[stamp]
        assert datetime.fromisoformat(user[stamp]).utcoffset() == timedelta(0)


async def test_create_with_a_taken_email_is_409_whatever_its_case(client: httpx.AsyncClient) -> None:
    await create(client, "Ada@Example.com")

    for email in ("Ada@Example.com", "ada@example.com", "ADA@EXAMPLE.COM"):
        body = assert_problem(await client.post("/users", json={"email": email, "name": "Other"}), 409)
        assert email in str(body["detail"])
    listed = (await client.get("/users")).json()
    assert [user["email"] for user in listed] == ["Ada@Example.com"]


async def test_non_ascii_emails_are_unique_case_insensitively(client: httpx.AsyncClient) -> None:
    await create(client, "élodie@example.com")

    assert_problem(await client.post("/users", json={"email": "ÉLODIE@example.com", "name": "É"}), 409)


async def test_get_returns_the_user(client: httpx.AsyncClient) -> None:
    created = await create(client, "grace@example.com", "Grace Hopper")

    response = await client.get(f"/users/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


async def test_get_of_an_unknown_id_is_404(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/users/424242"), 404)
    assert "424242" in str(body["detail"])


async def test_patch_changes_only_the_fields_given_and_moves_updated_at(client: httpx.AsyncClient) -> None:
    created = await create(client, "alan@example.com", "Alan")

    response = await client.patch(f"/users/{created['id']}", json={"name": "Alan Turing"})

    assert response.status_code == 200
    updated = response.json()
    assert updated["name"] == "Alan Turing"
    assert updated["email"] == "alan@example.com"
    assert updated["created_at"] == created["created_at"]
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(str(created["updated_at"]))
    assert (await client.get(f"/users/{created['id']}")).json() == updated


async def test_patch_email_and_name_together(client: httpx.AsyncClient) -> None:
    created = await create(client, "old@example.com", "Old")

    response = await client.patch(f"/users/{created['id']}", json={"email": "new@example.com", "name": "New"})

    assert response.status_code == 200
    assert (response.json()["email"], response.json()["name"]) == ("new@example.com", "New")


async def test_patch_may_change_the_case_of_ones_own_email(client: httpx.AsyncClient) -> None:
    created = await create(client, "case@example.com")

    response = await client.patch(f"/users/{created['id']}", json={"email": "CASE@example.com"})

    assert response.status_code == 200
    assert response.json()["email"] == "CASE@example.com"


async def test_patch_to_an_email_of_another_user_is_409(client: httpx.AsyncClient) -> None:
    await create(client, "taken@example.com", "First")
    second = await create(client, "free@example.com", "Second")

    assert_problem(await client.patch(f"/users/{second['id']}", json={"email": "TAKEN@example.com"}), 409)
    assert (await client.get(f"/users/{second['id']}")).json() == second


async def test_patch_of_an_unknown_id_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.patch("/users/999", json={"name": "Nobody"}), 404)


@pytest.mark.parametrize("body", [{}, {"name": None}, {"email": None}, {"email": None, "name": "X"}])
async def test_patch_needs_at_least_one_real_value(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    created = await create(client, "keep@example.com", "Keep")

    problem = assert_problem(await client.patch(f"/users/{created['id']}", json=body), 422)

    assert problem["errors"]
    assert (await client.get(f"/users/{created['id']}")).json() == created


async def test_delete_removes_the_user(client: httpx.AsyncClient) -> None:
    created = await create(client, "gone@example.com")

    response = await client.delete(f"/users/{created['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"/users/{created['id']}"), 404)
    assert_problem(await client.delete(f"/users/{created['id']}"), 404)


async def test_a_deleted_users_email_can_be_used_again(client: httpx.AsyncClient) -> None:
    created = await create(client, "again@example.com")
    await client.delete(f"/users/{created['id']}")

    again = await create(client, "again@example.com")

    assert again["id"] != created["id"]


async def test_list_is_ordered_by_id_with_default_limit_50(client: httpx.AsyncClient) -> None:
    ids = [(await create(client, f"user{n}@example.com"))["id"] for n in range(55)]

    response = await client.get("/users")

    assert response.status_code == 200
    assert [user["id"] for user in response.json()] == ids[:50]
    assert response.headers["link"] == f'</users?limit=50&after={ids[49]}>; rel="next"'


async def test_list_after_an_id_starts_past_it(client: httpx.AsyncClient) -> None:
    ids = [(await create(client, f"after{n}@example.com"))["id"] for n in range(5)]

    response = await client.get("/users", params={"after": ids[1], "limit": 2})

    assert [user["id"] for user in response.json()] == ids[2:4]


async def test_walking_the_link_headers_visits_every_user_once(client: httpx.AsyncClient) -> None:
    ids = [(await create(client, f"walk{n}@example.com"))["id"] for n in range(11)]

    seen: list[object] = []
    url: str | None = "/users?limit=4"
    pages = 0
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200
        seen += [user["id"] for user in response.json()]
        pages += 1
        link = response.headers.get("link")
        url = link[1 : link.index(">")] if link else None

    assert seen == ids
    assert pages == 3


async def test_no_link_when_the_page_ends_exactly_at_the_last_user(client: httpx.AsyncClient) -> None:
    for n in range(3):
        await create(client, f"exact{n}@example.com")

    response = await client.get("/users", params={"limit": 3})

    assert len(response.json()) == 3
    assert "link" not in response.headers


async def test_empty_table_lists_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/users")

    assert response.status_code == 200
    assert response.json() == []
    assert "link" not in response.headers


async def test_concurrent_creates_of_one_email_make_one_user(client: httpx.AsyncClient) -> None:
    statuses: list[int] = []

    async def attempt(n: int) -> None:
        body = {"email": "RACE@example.com" if n % 2 else "race@example.com", "name": f"Racer {n}"}
        statuses.append((await client.post("/users", json=body)).status_code)

    async with anyio.create_task_group() as tasks:
        for n in range(10):
            tasks.start_soon(attempt, n)

    assert sorted(statuses) == [201] + [409] * 9
    assert len((await client.get("/users")).json()) == 1


async def test_bodies_written_by_postgresql_match_the_documented_schema(client: httpx.AsyncClient) -> None:
    awkward = 'Zoë "Quote" \\ back\tslash\nnew line 😀 </script>'
    created = await create(client, "odd+tag@example.com", awkward)

    fetched = (await client.get(f"/users/{created['id']}")).json()
    listed = (await client.get("/users")).json()

    assert created["name"] == awkward
    assert fetched == listed[0] == created
    user = UserPublic.model_validate(created)
    assert set(created) == set(UserPublic.model_fields)
    assert (user.id, user.email, user.name) == (created["id"], "odd+tag@example.com", awkward)


async def test_lookup_by_email_is_case_insensitive_and_gives_zero_or_one_user(client: httpx.AsyncClient) -> None:
    ada = await create(client, "Ada@Example.com", "Ada")
    await create(client, "grace@example.com", "Grace")

    found = await client.get("/users", params={"email": "ADA@example.COM"})
    missing = await client.get("/users", params={"email": "nobody@example.com"})

    assert found.status_code == missing.status_code == 200
    assert found.json() == [ada] and missing.json() == []
    assert "link" not in found.headers


async def test_lookup_by_email_keeps_after_and_checks_limit(client: httpx.AsyncClient) -> None:
    ada = await create(client, "ada@example.com", "Ada")

    before = await client.get("/users", params={"email": "ada@example.com", "after": ada["id"] - 1, "limit": 1})
    past = await client.get("/users", params={"email": "ada@example.com", "after": ada["id"]})

    assert before.json() == [ada] and past.json() == []
    assert_problem(await client.get("/users", params={"email": "ada@example.com", "limit": 0}), 422)


@pytest.mark.parametrize("email", ["not-an-email", "a b@example.com", "ada@localhost", "x" * 321 + "@example.com"])
async def test_lookup_by_an_invalid_email_is_422(client: httpx.AsyncClient, email: str) -> None:
    body = assert_problem(await client.get("/users", params={"email": email}), 422)

    assert body["errors"][0]["loc"] == ["query", "email"]
