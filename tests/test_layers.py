"""The layers of api/ point one way (pyproject.toml's import-linter contract, which `lint-imports` holds in make
test): operations, the app, routes, the HTTP edge, persistence, the base. Every module is in a layer, and what
runs per request loads nothing of operations, not even at run time."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "api"


def layered_modules() -> set[str]:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (layers,) = [contract["layers"] for contract in contracts["contracts"] if contract["type"] == "layers"]
    return {module.strip() for layer in layers for module in layer.replace("|", ":").split(":")}


def test_every_module_of_api_is_in_a_layer() -> None:
    layered = layered_modules()
    # The package itself, and `python -m api`, the command line's way in, stand outside the layers.
    modules = {".".join(path.relative_to(ROOT).with_suffix("").parts) for path in API.rglob("*.py")}
    modules -= {"api.__init__", "api.__main__"}

    outside = {m for m in modules if not any(m == layer or m.startswith(f"{layer}.") for layer in layered)}
    assert not outside, f"in no layer of pyproject.toml's import-linter contract: {sorted(outside)}"


def test_building_the_app_loads_no_operations_module() -> None:
    # What a uvicorn worker does: import the factory and call it. Nothing of api.ops may come with it.
    script = (
        "import sys; from api.app import create_app; from api.settings import Settings; "
        "create_app(Settings(_env_file=None)); print(sorted(m for m in sys.modules if m.startswith('api.ops')))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "[]"
