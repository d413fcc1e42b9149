"""The OpenAPI document clients are generated from: served byte for byte as committed, with authentication off
(tests/openapi.json) and on (tests/openapi-authenticated.json: the bearer scheme, each operation's scope,
its 401 and 403).

A change to either is a change of contract for every generated client, so it is made on purpose:
`pytest tests/test_openapi.py --write-openapi` writes the served documents, and the diff is reviewed.
"""

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from api.app import create_app
from tests.helpers import make_settings

pytestmark = pytest.mark.anyio

HERE = Path(__file__).parent
AUTHENTICATED = {"auth_issuer": "https://issuer.example/", "auth_audience": "users-api"}


@pytest.mark.parametrize(
    ("committed", "settings"),
    [(HERE / "openapi.json", {}), (HERE / "openapi-authenticated.json", AUTHENTICATED)],
    ids=["anonymous", "authenticated"],
)
async def test_the_served_document_is_the_committed_one(
    request: pytest.FixtureRequest, committed: Path, settings: dict[str, Any]
) -> None:
    # An app that never starts: describing the API needs neither the database nor the issuer.
    app = create_app(make_settings("postgresql://unused@127.0.0.1:1/none", **settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        served = (await client.get("/openapi.json")).content

    if request.config.getoption("--write-openapi"):
        await anyio.Path(committed).write_bytes(served)
    assert served == await anyio.Path(committed).read_bytes(), "the document changed: review it, then --write-openapi"
