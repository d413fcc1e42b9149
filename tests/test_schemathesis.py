"""The served API against its own OpenAPI document: schemathesis, every check on, a fixed seed.

Run as `make run` serves it (`users-api serve`, as the app role), with the schemathesis command line
that a client's team would run, so a generated client can trust what the document says: statuses,
headers, media types, bounds, formats, and the links from a created user to what can be done with it.
"""

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ServedAPI

SEED = 20261125
CONFIG = Path(__file__).with_name("schemathesis.toml")  # the statuses some operations refuse valid data with
# Examples per operation in the fuzzing phase; the coverage phase adds every boundary and missing or
# wrong-typed value it derives from the document, and the stateful phase follows the links.
MAX_EXAMPLES = 400
PHASES = ("examples", "coverage", "fuzzing", "stateful")
OPERATIONS = 8


def schemathesis(url: str, report: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
         "--checks", "all", "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES),
         "--phases", ",".join(PHASES), "--generation-database", "none", "--no-color",
         "--report", "json", "--report-json-path", str(report)],
        cwd=report.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_schemathesis_finds_nothing(database_url: str, tmp_path: Path) -> None:
    api = ServedAPI({"DATABASE_URL": database_url, "MIGRATE_ON_SERVE": "false", "LOG_LEVEL": "warning"}, tmp_path)
    try:
        done = schemathesis(api.url, tmp_path / "report.json")
    finally:
        api.stop(signal.SIGINT)
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    rates: dict[str, dict[str, dict[str, int]]] = report["valid_rates"]
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", done.stdout)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (report["failures"], report["errors"]) == ([], [])
    assert report["operations"]["tested"] == OPERATIONS
    reached = {operation: sum(phase["accepted"] for phase in phases.values()) for operation, phases in rates.items()}
    assert len(reached) == OPERATIONS and min(reached.values()) > 0, f"every operation answers 2xx sometimes: {reached}"
    assert {phase: report["phases"][phase]["status"] for phase in PHASES} == dict.fromkeys(PHASES, "success")
    assert links is not None and links[1] == links[2], "the stateful phase follows every link"
    assert not [line for line in api.output.splitlines() if line.startswith(("ERROR", "Traceback"))], api.output
