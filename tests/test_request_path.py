"""The code that serves requests never imports operations (api/ops/): what runs per request is api/ alone."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

API = Path(__file__).resolve().parent.parent / "api"
# python -m api is the command line's way in, an operation: the one module of api/ outside ops/ that may.
ENTRY_POINT = API / "__main__.py"
REQUEST_PATH = sorted(path for path in API.rglob("*.py") if "ops" not in path.relative_to(API).parts)


def imported(path: Path, package: str) -> set[str]:
    """Every module `path` (a module of `package`) imports, by its full dotted name, relative ones resolved."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


def package_of(path: Path) -> str:
    return ".".join(["api", *path.relative_to(API).parent.parts])


@pytest.mark.parametrize("path", [p for p in REQUEST_PATH if p != ENTRY_POINT], ids=lambda p: str(p.relative_to(API)))
def test_no_request_path_module_imports_operations(path: Path) -> None:
    found = {name for name in imported(path, package_of(path)) if name == "api.ops" or name.startswith("api.ops.")}

    assert not found, f"api/{path.relative_to(API)} imports {sorted(found)}"


def test_the_check_sees_an_import_of_operations(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    sources = {
        "from api import ops\nfrom api.ops.cli import main\nimport api.ops.seed\n": ("api.routes", "api.ops.seed"),
        "from ..ops import cluster\n": ("api.routes", "api.ops.cluster"),
        "from . import ops\n": ("api", "api.ops"),
    }
    for source, (package, expected) in sources.items():
        module.write_text(source)
        assert expected in imported(module, package), source


def test_building_the_app_loads_no_operations_module() -> None:
    # What a uvicorn worker does: import the factory and call it. Nothing of api.ops may come with it.
    script = (
        "import sys; from api.app import create_app; from api.settings import Settings; "
        "create_app(Settings(_env_file=None)); print(sorted(m for m in sys.modules if m.startswith('api.ops')))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "[]"
