"""Trace ids for every request; OpenTelemetry export when the standard OTEL_* variables ask for it.

With no OTLP endpoint set, nothing is exported and FastAPI's native telemetry stays off (it would look
for a provider on every request). Each request still gets a W3C trace id: the incoming `traceparent`'s,
or a new one, so a client, the logs and a proxy's traces can name the same request.
"""

import os
import random
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SIGNALS = {"TRACES": "tracing", "METRICS": "metrics", "LOGS": "logs"}
TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
_TRACE_CONTEXT = TraceContextTextMapPropagator()


def exported(environ: Mapping[str, str] = os.environ) -> set[str]:
    """The signals OTEL_* sends somewhere: an OTLP endpoint is set for them and their exporter is not `none`.

    The rule FastAPI's auto-configuration applies (fastapi/telemetry/_runtime.py), decided once at startup.
    """
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return set()
    return {
        signal
        for signal in SIGNALS
        if (environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        and environ.get(f"OTEL_{signal}_EXPORTER", "otlp").strip().lower() != "none"
    }


def telemetry_config(signals: set[str]) -> TelemetryConfig:
    """FastAPI's native telemetry: on for the exported signals, with OTLP exporters built from OTEL_*."""
    if not signals:
        return TELEMETRY_OFF
    config: TelemetryConfig = {"auto_configure": True}
    for signal, key in SIGNALS.items():
        config[key] = signal in signals  # type: ignore[literal-required]
    return config


@contextmanager
def sql_spans(signals: set[str]) -> Iterator[None]:
    """While the block runs, a span for every statement asyncpg sends, in the request's trace.

    Only when traces are exported: opentelemetry-instrumentation-asyncpg wraps asyncpg's methods, and
    the wrapper costs a regex and a context switch per statement even with nothing recording.
    """
    provider = trace.get_tracer_provider()  # FastAPI set it up from OTEL_* before the lifespan started
    if "TRACES" not in signals or not isinstance(provider, TracerProvider):
        yield
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    provider.add_span_processor(NamedAfterQueryFile())
    instrumentor = AsyncPGInstrumentor(capture_parameters=False)  # type: ignore[no-untyped-call]  # values could be emails: never recorded
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


_QUERY_FILE = re.compile(r"--\s*(\w+):")


class NamedAfterQueryFile(SpanProcessor):
    """Names a statement's span after its sql/ file (`get_user`), from the header the file starts with.

    The instrumentation names a span after the statement's first word once a leading /* */ comment is
    removed; every file here starts with `-- name: what it does`, so every span would be called `--`.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        statement = (span.attributes or {}).get("db.statement") or (span.attributes or {}).get("db.query.text")
        if span.name == "--" and isinstance(statement, str) and (found := _QUERY_FILE.match(statement)):
            span.update_name(found.group(1))


def traceresponse(traceparent: bytes | None, traced: bool) -> bytes:
    """This request's W3C `traceresponse`: version, trace id, span id, flags (sampled: recorded here).

    Its server span's ids when traces are exported; else the incoming `traceparent`'s trace id, or a
    new one, with a new span id. Bytes, as the response header and the logs (`trace_id_of`) need them.
    """
    if traced:  # FastAPI's server span, started from the incoming traceparent, is current here
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            return b"00-%032x-%016x-%02x" % (context.trace_id, context.span_id, context.trace_flags)
    fresh = _FRESH.pop() if _FRESH else _fresh()
    if traceparent is not None:
        parent = trace.get_current_span(_TRACE_CONTEXT.extract({"traceparent": traceparent.decode("latin-1")}))
        context = parent.get_span_context()
        if context.is_valid:  # a malformed header starts a new trace, as W3C Trace Context asks
            return b"00-%032x-%s-00" % (context.trace_id, fresh[36:52])
    return fresh


def name_principal(subject: str, client_id: str | None) -> None:
    """The request's server span says whom its token speaks for: `user.id`, and the OAuth client."""
    span = trace.get_current_span()
    span.set_attribute("user.id", subject)
    if client_id is not None:
        span.set_attribute("oauth.client_id", client_id)


def trace_id_of(traceresponse: bytes) -> str:
    """The 32 hex digits of the trace id."""
    return traceresponse[3:35].decode()


# New traceresponses, made 256 at a time: drawing and formatting the ids once per request, on its way
# with the caches cold, cost more than in one loop for many (docs/levers.md, "trace ids in batches").
_FRESH: list[bytes] = []
os.register_at_fork(after_in_child=_FRESH.clear)  # a forked worker draws ids of its own


def _fresh() -> bytes:
    # Random, not secret: OpenTelemetry's SDK draws its ids from the same generator. Zero is invalid.
    _FRESH.extend(
        b"00-%032x-%016x-00" % (random.getrandbits(128) or 1, random.getrandbits(64) or 1) for _ in range(256)
    )
    return _FRESH.pop()
