"""The query files: all present, all loaded, each preparing against the migrated schema."""

import ast
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import psycopg
import pytest

from api.ops.cluster import Cluster
from api.queries import SQL, Queries, QueryFileError
from api.resources import resource_dir
from api.schemas import UserPublic
from tests.helpers import create

SQL_DIR = resource_dir("sql")
FILES = sorted(SQL_DIR.glob("*.sql"))


def test_every_file_is_a_query_and_every_query_a_file() -> None:
    assert {path.stem for path in FILES} == {field.name for field in fields(Queries)}


def test_the_loaded_text_is_the_files() -> None:
    for path in FILES:
        assert getattr(SQL, path.stem) == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_each_file_starts_with_a_header_comment(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(f"-- {path.stem}: ")


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_each_statement_names_its_file_after_its_first_word(path: Path) -> None:
    # pg_stat_statements keeps a statement's text from its first word on (PostgreSQL 18 leaves out the
    # comments before it), so the name after that word is what a DBA reads there (docs/dba.md).
    statement = next(line for line in path.read_text(encoding="utf-8").splitlines() if line and line[0] != "-")
    assert re.match(rf"^[A-Z]+ /\* {path.stem} \*/", statement), statement


@pytest.mark.anyio
async def test_a_dba_sees_a_running_statement_by_its_file(
    client: httpx.AsyncClient, postgresql: psycopg.Connection, cluster: Cluster
) -> None:
    user = await create(client, "watched@example.com")
    postgresql.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")  # the GET waits for it, in plain sight
    answers: list[httpx.Response] = []

    async def get() -> None:
        answers.append(await client.get(f"/users/{user['id']}"))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(get)
        # Looked at as a DBA would, as a superuser: others' statements are hidden from roles without
        # pg_read_all_stats. For 5 s at most.
        for _ in range(250):
            waiting = await anyio.to_thread.run_sync(statements_waiting_for_a_lock, cluster.url())
            if waiting:
                break
            await anyio.sleep(0.02)
        postgresql.rollback()  # the lock goes, and the GET is answered

    assert waiting, "the GET was never seen waiting for the lock"

    assert waiting[0].startswith("-- get_user: one user by id"), waiting[0]  # alone: its own file
    assert "SELECT /* get_user */" in waiting[0]
    assert [answer.status_code for answer in answers] == [200]


def statements_waiting_for_a_lock(admin_url: str) -> list[str]:
    """The text of every users-api statement waiting for a lock now, as pg_stat_activity shows it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity WHERE application_name = 'users-api' AND wait_event_type = 'Lock'"
        ).fetchall()
    return [str(query) for (query,) in rows]


# What PostgreSQL infers for each file: parameter types and result columns, as the routes rely on them.
SIGNATURES = {
    "create_user": (["text", "text"], ["id", "version", "body"]),
    "create_users": (["text[]", "text[]"], ["email", "id", "version", "body"]),
    "create_user_once": (
        ["text", "text", "text", "text"],
        ["outcome", "id", "version", "body", "request_matches"],
    ),
    "find_idempotency_key": (["text", "text", "text", "text"], ["id", "version", "body", "request_matches"]),
    "forget_idempotency_key": (["text", "text"], ["idempotency_key"]),
    "get_user": (["int8"], ["version", "body"]),
    "get_users": (["int8[]"], ["id", "version", "body"]),
    "list_users": (["int8", "int8"], ["body", "last_id", "more"]),
    "find_users_by_email": (["text", "int8"], ["body"]),
    "find_users_by_emails": (["text[]", "int8[]"], ["n", "body"]),
    "update_user": (["int8", "text", "text", "int8[]"], ["body", "version"]),
    "delete_user": (["int8", "int8[]"], ["deleted_id"]),
    "ping": ([], ["?column?"]),
    "current_wal_lsn": ([], ["lsn", "flushed"]),
    "replica_status": ([], ["in_recovery", "replayed"]),
}


@pytest.mark.anyio
@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
async def test_each_file_prepares_against_the_migrated_schema(database_url: str, path: Path) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        statement = await conn.prepare(getattr(SQL, path.stem))
        parameters = [parameter.name for parameter in statement.get_parameters()]
        columns = [attribute.name for attribute in statement.get_attributes()]
    finally:
        await conn.close()

    assert (parameters, columns) == SIGNATURES[path.stem]


@pytest.mark.anyio
async def test_every_file_that_returns_users_returns_them_as_clients_see_them(database_url: str) -> None:
    # Each file writes a user's JSON itself, so that a DBA reads and runs it alone; this holds them to one shape.
    conn = await asyncpg.connect(database_url, server_settings={"TimeZone": "UTC"})
    try:
        made = await conn.fetchrow(SQL.create_user, "shape@example.com", "Shape")
        assert made is not None
        kept = await conn.fetchrow(SQL.create_user_once, "shape-key", "kept@example.com", "Kept", "")
        bodies = {
            "create_user": made["body"],
            "create_user_once": kept["body"] if kept else None,
            "find_idempotency_key": await conn.fetchval(
                SQL.find_idempotency_key, "shape-key", "kept@example.com", "Kept", "", column=2
            ),
            "get_user": await conn.fetchval(SQL.get_user, made["id"], column=1),
            "list_users": await conn.fetchval(SQL.list_users, 0, 10),
            "find_users_by_email": await conn.fetchval(SQL.find_users_by_email, "SHAPE@example.com", 0),
            "get_users": await conn.fetchval(SQL.get_users, [made["id"]], column=2),
            "create_users": await conn.fetchval(SQL.create_users, ["many@example.com"], ["Many"], column=3),
            "find_users_by_emails": await conn.fetchval(SQL.find_users_by_emails, ["SHAPE@example.com"], [0], column=1),
            "update_user": await conn.fetchval(SQL.update_user, made["id"], None, "Renamed", None),
        }
        with_a_body = set()
        for path in FILES:
            statement = await conn.prepare(getattr(SQL, path.stem))
            if "body" in [attribute.name for attribute in statement.get_attributes()]:
                with_a_body.add(path.stem)
    finally:
        await conn.close()

    assert set(bodies) == with_a_body, "every file with a body column is called here, and returns a user"
    for name, body in bodies.items():
        found: Any = json.loads(body) if isinstance(body, str) else None
        users = found if isinstance(found, list) else [found]
        assert users and all(isinstance(user, dict) for user in users), f"{name}: {body!r}"
        for user in users:
            assert list(user) == list(UserPublic.model_fields), f"{name}: {list(user)}"
            UserPublic.model_validate(user)


def copy_queries(tmp_path: Path) -> Path:
    for path in FILES:
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path


def test_a_missing_file_fails_the_load_and_is_named(tmp_path: Path) -> None:
    directory = copy_queries(tmp_path)
    (directory / "get_user.sql").unlink()

    with pytest.raises(QueryFileError, match=r"get_user\.sql is missing"):
        Queries.load(directory)


@pytest.mark.parametrize("text", ["", "\n  \n", "-- only a comment\n-- and another\n"])
def test_an_empty_file_fails_the_load_and_is_named(tmp_path: Path, text: str) -> None:
    directory = copy_queries(tmp_path)
    (directory / "list_users.sql").write_text(text, encoding="utf-8")

    with pytest.raises(QueryFileError, match=r"list_users\.sql holds no SQL statement"):
        Queries.load(directory)


API_DIR = Path(__file__).resolve().parent.parent / "api"
SQL_TEXT = re.compile(
    r"\b(select\s.+\sfrom|insert\s+into|delete\s+from|update\s+\w+\s+set|(create|alter|drop)\s+(table|index|database|role))\b",
    re.IGNORECASE | re.DOTALL,
)
QUERY_METHODS = {"fetch", "fetchrow", "fetchval", "execute", "executemany", "prepare", "cursor", "copy_from_query"}


def python_files() -> list[Path]:
    return sorted(API_DIR.rglob("*.py"))


def docstrings(tree: ast.AST) -> set[ast.AST]:
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(first.value)
    return found


@pytest.mark.parametrize("path", python_files(), ids=lambda path: str(path.relative_to(API_DIR)))
def test_no_sql_text_in_the_python_of_api(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node not in skip:
            assert not SQL_TEXT.search(node.value), f"{path.name}:{node.lineno} holds SQL: {node.value!r}"
        assert not isinstance(node, ast.JoinedStr) or not any(
            isinstance(part, ast.Constant) and SQL_TEXT.search(str(part.value)) for part in node.values
        ), f"{path.name}:{node.lineno} builds SQL in an f-string"


def forwarded_query(call: ast.Call, tree: ast.Module) -> bool:
    """`call` is inside a method of db.py's Database that runs the `query` its caller gave (fetchval,
    fetchrow), or of coalesced.py's Coalesced that runs the query it was made with: those calls are
    checked where they are made, as every other call of a query method."""
    first = call.args[0] if call.args else None
    if isinstance(first, ast.Attribute) and ast.unparse(first) in ("self.query", "self.alone"):
        return any(isinstance(node, ast.ClassDef) and node.name == "Coalesced" for node in tree.body)
    if not (isinstance(first, ast.Name) and first.id == "query"):
        return False
    for database in (node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Database"):
        for method in (node for node in database.body if isinstance(node, ast.AsyncFunctionDef)):
            if "query" in [arg.arg for arg in method.args.args] and call in ast.walk(method):
                return True
    return False


@pytest.mark.parametrize("path", python_files(), ids=lambda path: str(path.relative_to(API_DIR)))
def test_every_query_the_code_runs_comes_from_sql(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_METHODS:
            first = node.args[0] if node.args else None
            from_sql = (
                isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name) and first.value.id == "SQL"
            )
            assert from_sql or (path.name in ("db.py", "coalesced.py") and forwarded_query(node, tree)), (
                f"{path.name}:{node.lineno} runs {ast.unparse(first) if first else 'nothing'}, not SQL.<file>"
            )


def test_the_sql_text_check_can_fail() -> None:
    assert SQL_TEXT.search("SELECT id FROM users WHERE id = $1")
    assert SQL_TEXT.search("insert into users (email) values ($1)")
    assert not SQL_TEXT.search("the email belongs to another user; select another one")


def test_every_coalesced_read_is_made_with_a_query_file() -> None:
    made = [
        node
        for path in python_files()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "shared"
    ]
    assert len(made) == 3, "the get-ones, the lookups by email, the plain creates"
    for call in made:
        alone, many = ast.unparse(call.args[0]), ast.unparse(call.args[1])
        assert alone.startswith("SQL.") and many.startswith("SQL."), ast.unparse(call)
