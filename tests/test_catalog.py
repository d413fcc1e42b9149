"""sql/README.md, the catalogue a DBA reviews, is what `make sql-catalog` writes from today's files and plans.

Built from the files' own header comments and from EXPLAIN on a seeded table: `make sql-catalog`
writes it (pytest --write-sql-catalog), `make test` fails when the committed one differs.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlparse

from api.resources import resource_dir
from tests.helpers import PARAMETERS, USERS, explain

# The order a DBA runs them in.
SETUP_SCRIPTS = (
    "create_roles",
    "create_database",
    "create_replication_role",
    "drop_replication_slot",
    "replication_slot_status",
)
LABELS = ("Parameters", "Returns", "Notes", "Run", "uses")
LABELLED = re.compile(rf"^({'|'.join(LABELS)}): ?(.*)$")


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    summary: str
    fields: dict[str, str]


def header(text: str) -> Header:
    """The leading comment of a file of sql/: `-- name: summary`, then `Label: text` fields.

    A line without a label continues the field above it; sqlfluff's directives are skipped.
    """
    lines = [line for line in _leading(text) if not line.startswith("sqlfluff:")]
    name, _, summary = lines[0].partition(": ")
    fields: dict[str, str] = {}
    current = "summary"
    for line in lines[1:]:
        labelled = LABELLED.match(line)
        if labelled:
            current = labelled.group(1)
            fields[current] = labelled.group(2)
        elif current == "summary":
            summary = f"{summary} {line}"
        else:
            fields[current] = f"{fields[current]} {line}"
    return Header(name, summary, fields)


def _leading(text: str) -> Iterator[str]:
    """The comment lines before the first statement, without their `--`."""
    for line in text.splitlines():
        if not line.startswith("--"):
            if line.strip():
                return
            continue
        yield line[2:].strip()


def statements(text: str) -> list[str]:
    """The first line of each statement, comments left out: what a script does, at a glance."""
    firsts = []
    for statement in sqlparse.split(text):
        first = sqlparse.format(statement, strip_comments=True).strip().splitlines()[0].rstrip(";")
        firsts.append("DO $$ ... $$" if first == "DO $$" else first)
    return firsts


def outline(plan: dict[str, Any], depth: int = 0) -> list[str]:
    """The plan as node types, one per line, indented by depth: no costs, rows or timings."""
    if plan["Node Type"] == "ModifyTable":
        line = f"{plan['Operation']} on {plan['Relation Name']}"
    else:
        line = plan["Node Type"]
        if "Index Name" in plan:
            line += f" using {plan['Index Name']}"
        if "Relation Name" in plan:
            line += f" on {plan['Relation Name']}"
    if plan.get("Conflict Arbiter Indexes"):
        line += f" (conflict arbiter: {', '.join(plan['Conflict Arbiter Indexes'])})"
    lines = [("  " * depth) + ("-> " if depth else "") + line]
    for child in plan.get("Plans", []):
        lines += outline(child, depth + 1)
    return lines


async def render(conn: asyncpg.Connection) -> str:
    """The whole catalogue, EXPLAINing every query on `conn`'s seeded, analysed users table."""
    sql_dir, migrations_dir = resource_dir("sql"), resource_dir("migrations")
    queries = sorted(sql_dir.glob("*.sql"))
    out = [
        "# The SQL of users-api",
        "",
        "Written by `make sql-catalog` from each file's header comment and from `EXPLAIN` run on",
        f"{USERS:,} users loaded with COPY and analysed. `make test` fails when this file is out of date:",
        "edit the files, not this.",
        "",
        "## Queries",
        "",
        "The API runs these and no other SQL, each as one statement with `$n` parameters, as the app role.",
        "",
        "| query | what it does | index |",
        "|---|---|---|",
    ]
    headers = {path.stem: header(path.read_text(encoding="utf-8")) for path in queries}
    for path in queries:
        head = headers[path.stem]
        out.append(f"| [`{head.name}`]({path.name}) | {_sentence(head.summary)} | `{head.fields['uses']}` |")
    for path in queries:
        head = headers[path.stem]
        plan = await explain(conn, path.read_text(encoding="utf-8"), *PARAMETERS[path.stem])
        out += ["", f"### {head.name}", "", _sentence(head.summary), ""]
        out += _fields(head, ("Parameters", "Returns", "Notes"))
        out.append(f"- **Index:** `{head.fields['uses']}`")
        out.append(f"- **Plan**, for parameters `{PARAMETERS[path.stem]!r}`:")
        out += ["", "  ```", *(f"  {line}" for line in outline(plan)), "  ```"]
    out += [
        "",
        "## Setup, run once by a DBA",
        "",
        "psql scripts, run as a superuser (or a role with CREATEROLE and CREATEDB), before any migration.",
    ]
    for name in SETUP_SCRIPTS:
        path = sql_dir / "setup" / f"{name}.sql"
        head = header(path.read_text(encoding="utf-8"))
        out += ["", f"### [{head.name}](setup/{path.name})", "", _sentence(head.summary), ""]
        out += _fields(head, ("Parameters", "Returns", "Notes"))
        out += _statements(path)
        out.append(f"- **Run:** `{head.fields['Run']}`")
    out += [
        "",
        "## Migrations",
        "",
        "Applied in order by yoyo, as the owner role, each in one transaction; each has a rollback.",
    ]
    for path in sorted(migrations_dir.glob("*.sql")):
        if path.name.endswith(".rollback.sql"):
            continue
        rollback = path.with_name(f"{path.stem}.rollback.sql")
        out += ["", f"### [{path.stem}](../migrations/{path.name})", ""]
        out += [f"- **Changes:** {' '.join(_leading(path.read_text(encoding='utf-8')))}"]
        out += _statements(path)
        out += [f"- **Rollback** ([{rollback.name}](../migrations/{rollback.name})): "
                f"{' '.join(_leading(rollback.read_text(encoding='utf-8')))}"]  # fmt: skip
        out += _statements(rollback)
    return "\n".join(out) + "\n"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fields(head: Header, labels: tuple[str, ...]) -> list[str]:
    return [f"- **{label}:** {head.fields[label]}" for label in labels if label in head.fields]


def _statements(path: Path) -> list[str]:
    firsts = statements(path.read_text(encoding="utf-8"))
    return ["- **Statements:** " + "; ".join(f"`{first}`" for first in firsts)]


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
