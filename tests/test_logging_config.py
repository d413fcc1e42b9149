"""LOG_FORMAT=json: one JSON object per line, in every worker, each request's carrying its trace id."""

import json
import signal
from pathlib import Path

import pytest

from tests.helpers import ServedAPI
from tests.test_edge import trace_id


@pytest.mark.slow
def test_json_lines_from_every_worker_name_their_request(database_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url, "MIGRATE_ON_SERVE": "false", "LOG_FORMAT": "json", "WORKERS": "2"}
    api = ServedAPI(env, tmp_path)
    try:
        created = api.client.post("/users", json={"email": "logged@example.com", "name": "Logged Person"})
        fetched = api.client.get(f"/users/{created.json()['id']}")
    finally:
        assert api.stop(signal.SIGTERM) == 0
    lines = [json.loads(line) for line in api.output.splitlines()]  # every line, uvicorn's included

    requests = [line for line in lines if line["logger"] == "api.requests"]
    assert [(line["method"], line["route"], line["status"]) for line in requests] == [
        ("POST", "/users", 201),
        ("GET", "/users/{user_id}", 200),
    ]
    assert [line["trace_id"] for line in requests] == [trace_id(created), trace_id(fetched)]
    assert all(line["level"] == "INFO" and line["duration_ms"] > 0 and "timestamp" in line for line in requests)
    assert "logged@example.com" not in api.output and "Logged Person" not in api.output
    assert {line["logger"] for line in lines} >= {"uvicorn.error", "api.requests"}
    assert not [line for line in lines if "color_message" in line], "uvicorn's coloured copy of a message"
