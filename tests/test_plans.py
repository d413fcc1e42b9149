"""Every query file uses the index its header declares, and never scans a table, on 200,000 users."""

import re
from typing import Any

import asyncpg
import pytest

from api.queries import SQL
from tests.helpers import PARAMETERS, USERS, explain, nodes

pytestmark = pytest.mark.anyio

DECLARED = re.compile(r"^-- uses: (\w+)$", re.MULTILINE)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
async def test_each_query_uses_its_declared_index_and_never_scans_a_table(
    seeded: asyncpg.Connection, name: str
) -> None:
    declared = DECLARED.findall(getattr(SQL, name))
    assert len(declared) == 1, f"sql/{name}.sql declares the index it uses in one '-- uses:' line"
    plan = await explain(seeded, getattr(SQL, name), *PARAMETERS[name])

    used = {node.get("Index Name") for node in nodes(plan)} | set(plan.get("Conflict Arbiter Indexes", []))
    scans = [node["Relation Name"] for node in nodes(plan) if node["Node Type"] == "Seq Scan"]
    assert not scans, f"{name} scans {scans} sequentially: {[node['Node Type'] for node in nodes(plan)]}"
    if declared[0] == "none":
        assert used == {None}
    else:
        assert declared[0] in used, f"{name} uses {used - {None}}, not {declared[0]}"


async def test_a_deep_page_costs_what_the_first_does(seeded: asyncpg.Connection) -> None:
    first = await explain(seeded, SQL.list_users, 0, 50, analyze=True)
    deep = await explain(seeded, SQL.list_users, USERS - 1000, 50, analyze=True)  # after the 199,000th

    def shape(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
        return [(node["Node Type"], node.get("Index Name")) for node in nodes(plan)]

    def buffers(plan: dict[str, Any]) -> int:
        return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])

    def page_rows(plan: dict[str, Any]) -> int:
        return int(next(node for node in nodes(plan) if node["Node Type"] == "Limit")["Actual Rows"])

    assert shape(deep) == shape(first)
    assert page_rows(deep) == page_rows(first) == 50
    assert buffers(deep) <= 2 * buffers(first) + 4, (buffers(first), buffers(deep))
