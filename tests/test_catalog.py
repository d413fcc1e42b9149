"""sql/README.md is what `make sql-catalog` writes from today's files and plans."""

import asyncpg
import pytest

from api.resources import resource_dir

from catalog import header, outline, render, statements

CATALOGUE = resource_dir("sql") / "README.md"


@pytest.mark.anyio
async def test_the_committed_catalogue_is_current(seeded: asyncpg.Connection, request: pytest.FixtureRequest) -> None:
    fresh = await render(seeded)
    if request.config.getoption("--write-sql-catalog"):
        CATALOGUE.write_text(fresh, encoding="utf-8")

    committed = CATALOGUE.read_text(encoding="utf-8") if CATALOGUE.exists() else ""
    assert committed == fresh, "sql/README.md is out of date: run `make sql-catalog` and commit it"


def test_a_header_is_read_into_its_fields() -> None:
    text = (
        "-- sqlfluff:rules:references.quoting:ignore_words:x\n"
        "-- pick: choose one\n-- Parameters: $1 id (bigint).\n-- Returns: the row,\n-- or none.\n"
        "-- uses: users_pkey\n\nSELECT 1;\n-- not part of the header\n"
    )
    parsed = header(text)

    assert (parsed.name, parsed.summary) == ("pick", "choose one")
    assert parsed.fields == {"Parameters": "$1 id (bigint).", "Returns": "the row, or none.", "uses": "users_pkey"}


def test_every_query_header_has_what_the_catalogue_shows() -> None:
    for path in sorted(resource_dir("sql").glob("*.sql")):
        parsed = header(path.read_text(encoding="utf-8"))
        assert parsed.name == path.stem
        assert {"Parameters", "Returns", "uses"} <= set(parsed.fields), path.name


def test_a_plan_outline_has_node_types_and_no_costs() -> None:
    plan = {
        "Node Type": "Limit", "Startup Cost": 0.42, "Total Cost": 4.1, "Plan Rows": 51,
        "Plans": [{"Node Type": "Index Scan", "Index Name": "users_pkey", "Relation Name": "users",
                   "Total Cost": 4.0, "Plan Rows": 51}],
    }  # fmt: skip

    assert outline(plan) == ["Limit", "  -> Index Scan using users_pkey on users"]


def test_statements_are_listed_by_their_first_line() -> None:
    text = "-- a comment\nSET LOCAL lock_timeout = '5s';\n\nDO $$\nBEGIN\n    PERFORM 1;\nEND\n$$;\nDROP TABLE t;\n"

    assert statements(text) == ["SET LOCAL lock_timeout = '5s'", "DO $$ ... $$", "DROP TABLE t"]


def test_the_catalogue_links_every_file_it_describes() -> None:
    committed = CATALOGUE.read_text(encoding="utf-8")
    sql_dir = resource_dir("sql")
    described = [*sql_dir.glob("*.sql"), *(sql_dir / "setup").glob("*.sql"), *resource_dir("migrations").glob("*.sql")]

    for path in described:
        assert f"{path.name})" in committed, f"{path.name} is not in sql/README.md"
