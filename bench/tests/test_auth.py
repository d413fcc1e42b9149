"""`make bench-auth` builds each of its apps and answers every get-one, with and without a token."""

import psycopg
import pytest

from bench import auth

pytestmark = pytest.mark.anyio


async def test_every_build_answers_its_get_ones(
    database_url: str, postgresql: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgresql.execute(
        "INSERT INTO users (email, name) SELECT 'a' || n || '@example.com', 'A' FROM generate_series(1, 5) n"
    )
    postgresql.commit()
    monkeypatch.setattr(auth, "WARMUP", 1)
    monkeypatch.setattr(auth, "REQUESTS", 3)

    found = await auth.child(database_url, list(auth.BUILDS))

    assert set(found) == set(auth.BUILDS) and all(us > 0 for us in found.values())
