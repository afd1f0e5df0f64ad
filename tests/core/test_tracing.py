"""Traces (issue 13): with a tracer provider, one charge is one trace — the HTTP server span, the one PostgreSQL
statement and the one Redis command under it — continuing the caller's W3C `traceparent`, and its log lines carry
the trace and span ids. Tracing off: tests/core/test_tracing_off.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from ghostpay.core import tracing
from ghostpay.core.settings import Settings
from tests.conftest import Api, in_process_api
from tests.support.tracing import CALLER, CALLER_TRACE, Lines


@pytest.fixture(scope="module")
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
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await api.http.get(path)).status_code == 200
    assert [span.name for span in exporter.get_finished_spans()] == []  # nor readiness' SELECT 1 and PING
