"""A client generated from the OpenAPI document by openapi-python-client, as a client's team would make one:
its AuthenticatedClient(token=...) sends the bearer token each operation needs, and it reads the answers."""

import importlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.identity import AUDIENCE, identity_provider
from tests.helpers import ServedAPI

DOCUMENT = Path(__file__).with_name("openapi-authenticated.json")


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The client package openapi-python-client makes from the committed document, imported."""
    tool = Path(sys.executable).parent  # its post-generation hook runs ruff, which is installed beside it
    subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(DOCUMENT), "--meta", "none",
         "--output-path", str(tmp_path / "users_api_client")],
        env=os.environ | {"PATH": f"{tool}{os.pathsep}{os.environ['PATH']}"},
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("users_api_client")
    for name in [name for name in sys.modules if name.startswith("users_api_client")]:
        del sys.modules[name]


@pytest.mark.slow
def test_a_generated_client_sends_its_token(database_url: str, tmp_path: Path, generated: Any) -> None:
    create_user = importlib.import_module("users_api_client.api.users.create_user")
    list_users = importlib.import_module("users_api_client.api.users.list_users")
    models = importlib.import_module("users_api_client.models")
    environment = {"DATABASE_URL": database_url, "MIGRATE_ON_SERVE": "false"}
    with identity_provider() as provider:
        api = ServedAPI(environment | {"AUTH_ISSUER": provider.issuer, "AUTH_AUDIENCE": AUDIENCE}, tmp_path)
        try:
            with generated.AuthenticatedClient(base_url=api.url, token=provider.token()) as client:
                body = models.UserCreate(email="g@example.com", name="G")
                created = create_user.sync_detailed(client=client, body=body)
                listed = list_users.sync_detailed(client=client)
            with generated.Client(base_url=api.url) as client:
                anonymous = list_users.sync_detailed(client=client)
        finally:
            api.stop(signal.SIGTERM)

    assert created.status_code == 201 and created.parsed.email == "g@example.com"
    assert listed.status_code == 200 and [user.email for user in listed.parsed] == ["g@example.com"]
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == 'Bearer realm="users-api"'
