"""GET /metrics: requests by route and status, the pool, its waits and the 503s, in Prometheus's format."""

import signal
import time
from pathlib import Path

import anyio
import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import PUBLISH_SECONDS
from tests.helpers import (
    ClientFactory,
    ServedAPI,
    assert_problem,
    create,
    openapi_document,
    pool_kept_busy,
    sample,
    scrape,
)

pytestmark = pytest.mark.anyio


def requests(method: str, route: str, status: int) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"http_request_method": method, "http_route": route, "http_response_status_code": str(status)}
    return ("http_server_request_duration_seconds_count", frozenset(labels.items()))


async def test_requests_are_counted_by_method_route_template_and_status(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    user = await create(client, "counted@example.com")
    for _ in range(3):
        await client.get(f"/users/{user['id']}")
    await client.get("/users/999999")
    await client.get("/nowhere/at/all")

    after = await scrape(client)

    def grew(key: tuple[str, frozenset[tuple[str, str]]]) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert grew(requests("POST", "/users", 201)) == 1
    assert grew(requests("GET", "/users/{user_id}", 200)) == 3
    seconds = ("http_server_request_duration_seconds_sum", requests("GET", "/users/{user_id}", 200)[1])
    assert 0 < grew(seconds) < 3 * 5, "three durations added up"
    assert grew(requests("GET", "/users/{user_id}", 404)) == 1
    assert grew(requests("GET", "", 404)) == 1, "an unmatched path counts under an empty route, not its own"
    assert not any(f"/users/{user['id']}" in str(labels) for _, labels in after)
    assert after[sample("http_server_active_requests")] == 1, "the scrape itself"


async def test_the_pool_its_waits_and_503s_by_reason(
    client_factory: ClientFactory, postgresql: psycopg.Connection
) -> None:
    async with client_factory(pool_max_size=1, pool_min_size=1, pool_acquire_timeout=0.3) as client:
        user = await create(client, "waited@example.com")
        before = await scrape(client)
        async with pool_kept_busy(client, postgresql, user["id"]), anyio.create_task_group() as tasks:
            waiting: list[httpx.Response] = []

            async def wait_for_the_pool() -> None:
                waiting.append(await client.get(f"/users/{user['id']}"))

            tasks.start_soon(wait_for_the_pool)
            await anyio.sleep(0.1)
            during = await scrape(client)
        after = await scrape(client)

    assert during[sample("db_client_connection_count", db_client_connection_state="used")] == 1
    assert during[sample("db_client_connection_count", db_client_connection_state="idle")] == 0
    assert during[sample("db_client_connection_max")] == 1
    assert during[sample("db_client_connection_pending_requests")] == 1
    assert_problem(waiting[0], 503)
    assert after[sample("db_client_connection_pending_requests")] == 0
    timeouts = sample("users_api_unavailable_responses_total", reason="pool_timeout")
    assert after[timeouts] - before.get(timeouts, 0) == 1
    waits = sample("db_client_connection_wait_time_seconds_count")
    slow_waits = sample("db_client_connection_wait_time_seconds_bucket", le="0.25")
    assert after[waits] - before[waits] == 2, "the PATCH that got the connection, the GET that gave up"
    assert after[slow_waits] - before[slow_waits] == 1, "the PATCH waited for nothing, the GET for 0.3 s"


async def test_metrics_false_serves_no_metrics(client_factory: ClientFactory) -> None:
    async with client_factory(metrics=False) as client:
        assert (await client.get("/metrics")).status_code == 404


def test_the_openapi_document_describes_metrics_as_text() -> None:
    operation = openapi_document()["paths"]["/metrics"]["get"]

    assert list(operation["responses"]["200"]["content"]) == ["text/plain; version=1.0.0; charset=utf-8"]


@pytest.mark.slow
def test_one_scrape_shows_every_worker(database_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url, "MIGRATE_ON_SERVE": "false", "WORKERS": "2", "POOL_MAX_SIZE": "3"}
    api = ServedAPI(env, tmp_path)
    try:
        for _ in range(40):  # a connection each, which the kernel hands to either worker
            httpx.get(f"{api.url}/users/1", headers={"connection": "close"})
        # The worker that answers a scrape publishes its own figures then; the other's are a second old at most.
        time.sleep(PUBLISH_SECONDS + 0.5)
        scraped = api.client.get("/metrics").text
    finally:
        assert api.stop(signal.SIGTERM) == 0
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }

    assert samples[sample("db_client_connection_max")] == 2 * 3, "both workers' pools"
    assert samples[requests("GET", "/users/{user_id}", 404)] == 40
