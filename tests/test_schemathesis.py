"""The served API against its own OpenAPI document: schemathesis, every check on, a fixed seed.

Run as `make run` serves it (`users-api serve`, as the app role), with authentication on and a valid
token (users:read users:write) from a stand-in identity provider, with the schemathesis command line
that a client's team would run, so a generated client can trust what the document says: statuses,
headers, media types, bounds, formats, the links from a created user to what can be done with it,
and (its ignored_auth check) that an operation needing a token refuses a request without one. Twice:
as configured by default, and with STATEMENT_CACHE_SIZE=0, what PgBouncer before 1.21 needs.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.identity import AUDIENCE, identity_provider
from tests.helpers import ServedAPI

SEED = 20261125
CONFIG = Path(__file__).with_name("schemathesis.toml")  # the statuses some operations refuse valid data with
# SCHEMATHESIS_HOOKS=tests.schemathesis_hooks: every valid Idempotency-Key unique (why: that module).
# Examples per operation in the fuzzing phase; the coverage phase adds every boundary and missing or
# wrong-typed value it derives from the document, and the stateful phase follows the links.
MAX_EXAMPLES = 400
PHASES = ("examples", "coverage", "fuzzing", "stateful")
OPERATIONS = 8
# The token's scopes: /metrics (metrics:read) answers 403 to it, as documented, and never 2xx.
SCOPES = "users:read users:write"
UNREACHED = {"GET /metrics"}


def schemathesis(url: str, report: Path, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
         "--header", f"Authorization: Bearer {token}",
         "--checks", "all", "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES),
         "--phases", ",".join(PHASES), "--generation-database", "none", "--no-color",
         "--report", "json,har", "--report-json-path", str(report),
         "--report-har-path", str(report.with_suffix(".har"))],
        cwd=report.parent,
        env=os.environ | {"SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "statement_cache",
    [None, "0"],  # 0: no statement prepared by name, as behind PgBouncer before 1.21 (docs/operating.md)
    ids=["statement-cache", "no-statement-cache"],
)
def test_schemathesis_finds_nothing(database_url: str, tmp_path: Path, statement_cache: str | None) -> None:
    environment = {"DATABASE_URL": database_url, "MIGRATE_ON_SERVE": "false", "LOG_LEVEL": "warning"}
    if statement_cache is not None:
        environment["STATEMENT_CACHE_SIZE"] = statement_cache
    with identity_provider() as provider:
        environment |= {"AUTH_ISSUER": provider.issuer, "AUTH_AUDIENCE": AUDIENCE}
        api = ServedAPI(environment, tmp_path)
        try:
            done = schemathesis(api.url, tmp_path / "report.json", provider.token(scope=SCOPES, lifetime=900))
        finally:
            api.stop(signal.SIGINT)
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    rates: dict[str, dict[str, dict[str, int]]] = report["valid_rates"]
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", done.stdout)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (report["failures"], report["errors"]) == ([], [])
    assert report["operations"]["tested"] == OPERATIONS
    reached = {operation: sum(phase["accepted"] for phase in phases.values()) for operation, phases in rates.items()}
    accepted = {operation for operation, count in reached.items() if count}
    assert len(accepted) == OPERATIONS - len(UNREACHED) and not accepted & UNREACHED, (
        f"every operation the token may use answers 2xx sometimes: {reached}"
    )
    exchanges = json.loads((tmp_path / "report.har").read_text())["log"]["entries"]
    anonymous = {
        (exchange["request"]["method"], exchange["response"]["status"])
        for exchange in exchanges
        if not any(header["name"].lower() == "authorization" for header in exchange["request"]["headers"])
    }
    assert {("GET", 401), ("POST", 401), ("PATCH", 401), ("DELETE", 401)} <= anonymous, "ignored_auth's requests"
    assert {phase: report["phases"][phase]["status"] for phase in PHASES} == dict.fromkeys(PHASES, "success")
    assert links is not None and links[1] == links[2], "the stateful phase follows every link"
    assert not [line for line in api.output.splitlines() if line.startswith(("ERROR", "Traceback"))], api.output
