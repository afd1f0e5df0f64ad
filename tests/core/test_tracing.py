"""Traces (issue 13): with a tracer provider, one charge is one trace — the HTTP server span, the one PostgreSQL
statement and the one Redis command under it — continuing the caller's W3C `traceparent`, and its log lines carry
the trace and span ids. Without one (the OTEL_* variables unset) nothing is instrumented at all."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from ghostpay.app import create_app
from ghostpay.core import telemetry, tracing
from ghostpay.core.settings import Settings
from tests.conftest import Api, in_process_api

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


class Lines(logging.Handler):
    """The JSON access-log lines the process would write, kept for the test (`with Lines() as lines:`)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(telemetry.JsonFormatter())
        self.lines: list[dict[str, object]] = []
        self.logger = logging.getLogger("ghostpay.access")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def __enter__(self) -> Lines:
        self.logger.addHandler(self)
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(logging.NOTSET)


@pytest.fixture
async def traced_api(app_settings: Settings) -> AsyncIterator[tuple[Api, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=tracing.resource("test"))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with in_process_api(app_settings, tracer_provider=provider) as api:
        yield api, exporter


def _by_id(spans: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in spans}


def _under(span: ReadableSpan, ancestor: ReadableSpan, spans: dict[int, ReadableSpan]) -> bool:
    parent = span.parent
    while parent is not None:
        if parent.span_id == ancestor.context.span_id:
            return True
        parent = spans[parent.span_id].parent if parent.span_id in spans else None
    return False


async def test_one_charge_is_one_trace_with_its_http_database_and_redis_spans(
    traced_api: tuple[Api, InMemorySpanExporter],
) -> None:
    api, exporter = traced_api
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    exporter.clear()
    with Lines() as lines:
        response = await api.http.post(
            "/charges",
            json={"card_id": card["card_id"], "amount": 1, "currency": "USD"},
            headers={**merchant["headers"], "traceparent": CALLER},
        )
    assert response.status_code == 201, response.text

    spans = exporter.get_finished_spans()
    assert {format_trace_id(span.context.trace_id) for span in spans} == {CALLER_TRACE}  # one trace, the caller's
    assert all(span.kind is not SpanKind.INTERNAL for span in spans)  # no span per ASGI message
    [server] = [span for span in spans if span.kind is SpanKind.SERVER]
    assert server.name == "POST /charges"
    assert server.attributes is not None and server.attributes["http.route"] == "/charges"
    assert server.resource.attributes["service.name"] == "ghostpay-test"
    database = [span for span in spans if span.attributes and span.attributes.get("db.system") == "postgresql"]
    cache = [span for span in spans if span.attributes and span.attributes.get("db.system") == "redis"]
    # The hot path's budget, seen in the trace: one statement, one Redis command (the rate-limit script).
    assert len(database) == 1 and len(cache) == 1, [span.name for span in spans]
    assert cache[0].name == "EVALSHA"
    assert database[0].kind is SpanKind.CLIENT and cache[0].kind is SpanKind.CLIENT
    every = _by_id(spans)
    assert _under(database[0], server, every) and _under(cache[0], server, every)

    server_span_id = format_span_id(server.context.span_id)
    assert response.headers["traceparent"] == f"00-{CALLER_TRACE}-{server_span_id}-01"
    [access] = [line for line in lines.lines if line["route"] == "/charges"]
    assert (access["trace_id"], access["span_id"]) == (CALLER_TRACE, server_span_id)


async def test_probes_and_scrapes_are_not_traced(traced_api: tuple[Api, InMemorySpanExporter]) -> None:
    api, exporter = traced_api
    exporter.clear()
    for path in ("/healthz", "/metrics"):
        assert (await api.http.get(path)).status_code == 200
    assert [span.name for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER] == []


async def test_without_a_provider_nothing_is_instrumented(api: Api) -> None:
    """Tracing off costs the charge path nothing: asyncpg and Redis are not wrapped, the app has no OpenTelemetry
    middleware, and the edge still continues the caller's trace and logs its ids by hand."""
    assert not hasattr(asyncpg.Connection.execute, "__wrapped__")
    assert not hasattr(aioredis.Redis.execute_command, "__wrapped__")
    app = create_app(Settings())
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    with Lines() as lines:
        response = await api.http.get("/cards/card_missing", headers={"traceparent": CALLER})
    _, trace_id, span_id, flags = response.headers["traceparent"].split("-")
    assert (trace_id, flags) == (CALLER_TRACE, "01") and len(span_id) == 16
    [access] = lines.lines
    assert (access["trace_id"], access["span_id"]) == (CALLER_TRACE, span_id)


def test_tracing_is_off_unless_the_otel_variables_ask_for_it() -> None:
    assert tracing.provider_from_environment("charges", {}) is None
    assert tracing.provider_from_environment("charges", {"OTEL_SERVICE_NAME": "x"}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert tracing.provider_from_environment("charges", {**endpoint, "OTEL_SDK_DISABLED": "true"}) is None
    assert tracing.provider_from_environment("charges", {**endpoint, "OTEL_TRACES_EXPORTER": "none"}) is None
    for on in (endpoint, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}):
        provider = tracing.provider_from_environment("charges", on)
        assert isinstance(provider, TracerProvider)
        provider.shutdown()


def test_a_setting_this_build_cannot_honour_is_a_clear_error() -> None:
    with pytest.raises(tracing.TracingConfigError, match="grpc"):
        tracing.provider_from_environment(
            "charges", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        )
    with pytest.raises(tracing.TracingConfigError, match="zipkin"):
        tracing.provider_from_environment("charges", {"OTEL_TRACES_EXPORTER": "zipkin"})
