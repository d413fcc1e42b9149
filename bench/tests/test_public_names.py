"""The bench uses what api/ offers anyone: no private name of it (pyproject.toml's import-linter contract names
the modules it may use at all)."""

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent


def private_names_of_api(source: str) -> list[str]:
    """`module.name` for every name starting with an underscore that `source` imports from api."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "api":
            found += [f"{node.module}.{alias.name}" for alias in node.names if alias.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("api.") and "._" in alias.name]
    return found


@pytest.mark.parametrize("path", sorted(BENCH.rglob("*.py")), ids=lambda path: str(path.relative_to(BENCH)))
def test_no_module_of_the_bench_imports_a_private_name_of_api(path: Path) -> None:
    assert not private_names_of_api(path.read_text(encoding="utf-8"))


def test_the_check_sees_a_private_name() -> None:
    source = "from api.db import _may_run_again, Database\nimport api.ops._hidden\n"

    assert private_names_of_api(source) == ["api.db._may_run_again", "api.ops._hidden"]
