"""The OpenAPI document clients are generated from: served byte for byte as committed in tests/openapi.json.

A change to it is a change of contract for every generated client, so it is made on purpose:
`pytest tests/test_openapi.py --write-openapi` writes the served document, and the diff is reviewed.
"""

from pathlib import Path

import httpx
import pytest

from api.app import create_app
from tests.helpers import make_settings

pytestmark = pytest.mark.anyio

COMMITTED = Path(__file__).with_name("openapi.json")


async def test_the_served_document_is_the_committed_one(request: pytest.FixtureRequest) -> None:
    # An app that never starts: describing the API needs no database.
    app = create_app(make_settings("postgresql://unused@127.0.0.1:1/none"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        served = (await client.get("/openapi.json")).content

    if request.config.getoption("--write-openapi"):
        COMMITTED.write_bytes(served)
    assert served == COMMITTED.read_bytes(), "the OpenAPI document changed: review it, then --write-openapi"
