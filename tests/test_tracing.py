"""OpenTelemetry: what OTEL_* turns on, and one exported trace holding a request and its SQL statement."""

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from api.tracing import TELEMETRY_OFF, NamedAfterQueryFile, exported, telemetry_config
from bench.identity import AUDIENCE, identity_provider
from tests.helpers import ServedAPI
from tests.test_edge import PARENT_SPAN, PARENT_TRACE, TRACERESPONSE


@pytest.mark.parametrize(
    ("environ", "signals"),
    [
        ({}, set()),
        ({"OTEL_SERVICE_NAME": "users-api"}, set()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, {"TRACES", "METRICS", "LOGS"}),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, {"TRACES"}),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_LOGS_EXPORTER": "none"}, {"TRACES", "METRICS"}),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, set()),
    ],
)
def test_otel_variables_say_what_is_exported(environ: dict[str, str], signals: set[str]) -> None:
    assert exported(environ) == signals


def test_nothing_exported_leaves_fastapi_telemetry_off() -> None:
    assert telemetry_config(set()) == TELEMETRY_OFF
    assert telemetry_config({"TRACES"}) == {"auto_configure": True, "tracing": True, "metrics": False, "logs": False}


def test_a_statement_span_is_named_after_its_query_file() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(NamedAfterQueryFile())
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")

    tracer.start_span("--", attributes={"db.statement": "-- get_user: one user by id.\nSELECT 1"}).end()
    tracer.start_span("SELECT", attributes={"db.statement": "SELECT 1"}).end()

    assert [span.name for span in spans.get_finished_spans()] == ["get_user", "SELECT"]


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP receiver on 127.0.0.1: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        super().__init__(("127.0.0.1", 0), _Receive)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Receive(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.server.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def traces_to(collector: Collector, database_url: str) -> dict[str, str]:
    """The environment of a served API on `database_url` that exports its traces, and only them, to `collector`."""
    return {
        "DATABASE_URL": database_url,
        "MIGRATE_ON_SERVE": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }


@pytest.mark.slow
def test_one_exported_trace_holds_the_request_and_its_statement(
    database_url: str, tmp_path: Path, collector: Collector
) -> None:
    env = traces_to(collector, database_url) | {"OTEL_SERVICE_NAME": "users-api"}
    with identity_provider() as provider:  # with authentication on: the server span names whom the token is for
        api = ServedAPI(env | {"AUTH_ISSUER": provider.issuer, "AUTH_AUDIENCE": AUDIENCE}, tmp_path)
        headers = {"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"}
        headers["Authorization"] = f"Bearer {provider.token(sub='ada', client_id='reports')}"
        try:
            response = api.client.get("/users/1", headers=headers)
            made = api.client.post("/users", json={"email": "traced@example.com", "name": "T"}, headers=headers)
        finally:
            assert api.stop(signal.SIGTERM) == 0  # a stop flushes the spans not yet sent
    found = TRACERESPONSE.fullmatch(response.headers["traceresponse"])
    assert response.status_code == 404 and found is not None
    assert made.status_code == 201

    trace = [span for span in collector.spans if span.trace_id.hex() == PARENT_TRACE]
    by_name = {span.name: span for span in trace}
    server, statement = by_name["POST /users"], by_name["create_user"]
    assert server.kind == Span.SPAN_KIND_SERVER and server.parent_span_id.hex() == PARENT_SPAN
    assert found.group(2) == by_name["GET /users/{user_id}"].span_id.hex(), "traceresponse names the server span"
    named = {attribute.key: attribute.value.string_value for attribute in server.attributes}
    assert (named["user.id"], named["oauth.client_id"]) == ("ada", "reports")
    assert statement.kind == Span.SPAN_KIND_CLIENT
    attributes = {attribute.key: attribute.value.string_value for attribute in statement.attributes}
    assert "INSERT /* create_user */" in attributes["db.statement"] and "db.statement.parameters" not in attributes
    ancestors, span = set(), statement
    spans = {span.span_id: span for span in trace}
    while span.parent_span_id in spans:
        span = spans[span.parent_span_id]
        ancestors.add(span.name)
    assert "POST /users" in ancestors, "the statement's span is inside the request's"


def link_ids(span: Span) -> set[tuple[str, str]]:
    return {(link.trace_id.hex(), link.span_id.hex()) for link in span.links}


@pytest.mark.slow
def test_a_coalesced_reads_span_and_its_statements_link_to_each_other(
    database_url: str, tmp_path: Path, collector: Collector, postgresql: psycopg.Connection
) -> None:
    api = ServedAPI(traces_to(collector, database_url), tmp_path)
    try:
        # Held up by a lock, the first get-one is in flight while the others come: they share a statement.
        postgresql.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(4) as pool:
            answers = [pool.submit(api.client.get, f"/users/{n}") for n in range(1, 5)]
            time.sleep(1.0)
            postgresql.rollback()
            statuses = [answer.result().status_code for answer in answers]
    finally:
        assert api.stop(signal.SIGTERM) == 0
    assert statuses == [404] * 4

    batches = [span for span in collector.spans if span.name == "coalesced get_user"]
    endpoints = {
        (span.trace_id.hex(), span.span_id.hex()): span for span in collector.spans if span.name == "fastapi.endpoint"
    }
    assert batches, "no get-one shared a statement"
    for batch in batches:
        # The batch is no one request's: a trace of its own, linked to each member's span and they to it.
        members = link_ids(batch)
        assert members and members <= set(endpoints), "linked to the span of each request it answered"
        assert all((batch.trace_id.hex(), batch.span_id.hex()) in link_ids(endpoints[m]) for m in members)
        sizes = [attribute.value.int_value for attribute in batch.attributes if attribute.key == "users_api.batch.size"]
        assert sizes == [len(members)]
        statement = next(span for span in collector.spans if span.parent_span_id == batch.span_id)
        assert (statement.name, statement.trace_id) == ("get_users", batch.trace_id)
