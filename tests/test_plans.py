"""Every query file uses the index its header declares, and never scans users, on 200,000 users."""

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from api.queries import SQL
from api.seed import seed

pytestmark = pytest.mark.anyio

USERS = 200_000
DECLARED = re.compile(r"^-- uses: (\w+)$", re.MULTILINE)
# Representative parameters: an id in the middle of the table, a page at the start, an email.
PARAMETERS: dict[str, tuple[Any, ...]] = {
    "create_user": ("new.person@example.com", "New Person"),
    "get_user": (USERS // 2,),
    "list_users": (0, 51),
    "update_user": (USERS // 2, None, "Renamed"),
    "delete_user": (USERS // 2,),
    "ping": (),
}


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def explain(conn: asyncpg.Connection, query: str, *args: Any, analyze: bool = False) -> dict[str, Any]:
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    text = await conn.fetchval(f"EXPLAIN ({options}) {query}", *args)
    plan: dict[str, Any] = json.loads(text)[0]["Plan"]
    return plan


@pytest.fixture
async def seeded(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database holding 200,000 users, loaded with COPY and analysed."""
    await seed(database_url, USERS)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ANALYZE users")
        yield conn
    finally:
        await conn.close()


@pytest.mark.parametrize("name", sorted(PARAMETERS))
async def test_each_query_uses_its_declared_index_and_never_scans_users(seeded: asyncpg.Connection, name: str) -> None:
    declared = DECLARED.findall(getattr(SQL, name))
    assert len(declared) == 1, f"sql/{name}.sql declares the index it uses in one '-- uses:' line"
    plan = await explain(seeded, getattr(SQL, name), *PARAMETERS[name])

    used = {node.get("Index Name") for node in nodes(plan)} | set(plan.get("Conflict Arbiter Indexes", []))
    scans = [node for node in nodes(plan) if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "users"]
    assert not scans, f"{name} scans users sequentially"
    if declared[0] == "none":
        assert used == {None}
    else:
        assert declared[0] in used, f"{name} uses {used - {None}}, not {declared[0]}"


async def test_a_deep_page_costs_what_the_first_does(seeded: asyncpg.Connection) -> None:
    first = await explain(seeded, SQL.list_users, 0, 51, analyze=True)
    deep = await explain(seeded, SQL.list_users, USERS - 1000, 51, analyze=True)  # after the 199,000th

    def shape(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
        return [(node["Node Type"], node.get("Index Name")) for node in nodes(plan)]

    def buffers(plan: dict[str, Any]) -> int:
        return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])

    assert shape(deep) == shape(first)
    assert deep["Actual Rows"] == first["Actual Rows"] == 51
    assert buffers(deep) <= 2 * buffers(first) + 4, (buffers(first), buffers(deep))
