"""The baselines keep users-api's semantics: what the benchmark's workloads ask of each, they answer alike."""

import importlib
import json
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import serve

pytestmark = pytest.mark.anyio


def load_baseline(name: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    module = importlib.import_module(f"bench.baselines.{name}")
    return importlib.reload(module)  # read this test's environment, not an earlier one's


async def drive(app: FastAPI) -> dict[str, httpx.Response]:
    """What the benchmark's workloads ask of a system, and the answers a 409 and a 404 would be."""
    async with serve(app) as client:
        created = await client.post("/users", json={"email": "base@example.com", "name": "O"})
        return {
            "created": created,
            "taken": await client.post("/users", json={"email": "BASE@example.com", "name": "P"}),
            "fetched": await client.get(f"/users/{created.json()['id']}"),
            "missing": await client.get("/users/999999"),
            "second": await client.post("/users", json={"email": "base2@example.com", "name": "Q"}),
            "page": await client.get("/users", params={"limit": 1}),
            "found": await client.get("/users", params={"email": "BASE@example.com"}),
        }


def assert_same_contract(answers: dict[str, httpx.Response]) -> None:
    created, taken, fetched, missing, page = (answers[k] for k in ("created", "taken", "fetched", "missing", "page"))
    assert created.status_code == 201
    assert created.headers["location"] == f"/users/{created.json()['id']}"
    assert set(created.json()) == {"id", "email", "name", "created_at", "updated_at"}
    assert (taken.status_code, fetched.status_code, missing.status_code) == (409, 200, 404)
    assert fetched.json() == created.json()
    assert page.headers["link"] == f'</users?limit=1&after={created.json()["id"]}>; rel="next"'
    assert page.json() == [created.json()]
    assert answers["found"].json() == [created.json()]


async def test_the_orm_baseline_serves_the_same_contract(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    orm = load_baseline("orm_app", monkeypatch, DATABASE_URL=database_url)
    try:
        answers = await drive(orm.app)
    finally:
        await orm.engine.dispose()

    assert_same_contract(answers)


async def test_raw_minimal_serves_the_same_contract(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = await drive(load_baseline("raw_minimal", monkeypatch, DATABASE_URL=database_url).app)

    assert_same_contract(answers)
    assert answers["fetched"].text == answers["created"].text, "PostgreSQL's JSON text, as users-api sends it"


async def test_the_http_ceiling_serves_the_bodies_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = {"id": 7, "email": "c@example.com", "name": "C", "created_at": "x", "updated_at": "y"}
    bodies = tmp_path / "bodies.json"
    bodies.write_text(json.dumps({"user": user, "page": [user] * 3}))
    ceiling = load_baseline("ceiling_app", monkeypatch, BENCH_BODIES=str(bodies))

    async with serve(ceiling.app) as client:
        one = await client.get("/users/7")
        page = await client.get("/users", params={"limit": 100})
        found = await client.get("/users", params={"email": "c@example.com"})
        created = await client.post("/users", json={"email": "d@example.com", "name": "D"})

    assert one.json() == user
    assert found.json() == [user]
    assert page.json() == [user] * 3
    assert "link" in page.headers
    assert (created.status_code, created.headers["location"], created.json()) == (201, "/users/7", user)
