"""Each module imports only distributions its own install declares (deptry, configured in pyproject.toml).

api/ runs on the base install (`pip install .`), so an import of anything only an extra brings would fail
in production; bench/ runs on the bench extra (`make bench` installs only that), so an import of what only
`dev` brings would fail on a fresh clone's first `make bench`.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What each folder may import besides the base install: the extras not listed are development ones to it.
NOT_ITS_OWN = {"api": "embedded,bench,dev", "bench": "dev"}


def deptry(folder: Path, not_its_own: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """deptry on `folder`, the extras `not_its_own` counted as development dependencies."""
    command = [sys.executable, "-m", "deptry", str(folder), "--config", str(ROOT / "pyproject.toml")]
    command += ["--optional-dependencies-dev-groups", not_its_own, "--no-ansi"]
    if folder.name == "bench":  # its tests run in make test's environment, with dev's packages
        command += ["--extend-exclude", ".*/tests/", "--ignore", "DEP002"]  # bench uses part of the base only
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def test_api_imports_only_what_the_base_install_declares() -> None:
    done = deptry(ROOT / "api", NOT_ITS_OWN["api"])

    assert done.returncode == 0, done.stdout + done.stderr


def test_bench_imports_only_what_its_extra_declares() -> None:
    done = deptry(ROOT / "bench", NOT_ITS_OWN["bench"])

    assert done.returncode == 0, done.stdout + done.stderr


def test_an_import_only_dev_declares_is_caught_in_bench(tmp_path: Path) -> None:
    planted = tmp_path / "bench"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    (planted / "harness.py").write_text("import asgi_lifespan\n")  # the test suite's, declared by dev alone

    done = deptry(planted, NOT_ITS_OWN["bench"], cwd=tmp_path)

    assert done.returncode != 0
    assert "DEP004 'asgi_lifespan' imported but declared as a dev dependency" in done.stdout + done.stderr
