"""Traces (issue 13): with a tracer provider, one charge is one trace — the HTTP server span, the one PostgreSQL
statement and the one Redis command under it — continuing the caller's W3C `traceparent`, and its log lines carry
the trace and span ids; an httpx call made inside a trace sends it on. Tracing off: tests/core/test_tracing_off.py."""

from __future__ import annotations

import http.server
import threading
from collections.abc import AsyncIterator
from typing import NamedTuple

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from ghostpay.core import tracing
from ghostpay.core.settings import Settings
from tests.conftest import Api, in_process_api
from tests.support.tracing import CALLER, CALLER_TRACE, Lines


class Traced(NamedTuple):
    """An in-process app traced into `provider`, whose spans `exporter` keeps."""

    api: Api
    exporter: InMemorySpanExporter
    provider: TracerProvider


@pytest.fixture(scope="module")
async def traced_api(app_settings: Settings) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=tracing.resource("test"))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with in_process_api(app_settings, tracer_provider=provider) as api:
        yield Traced(api, exporter, provider)


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
    traced_api: Traced,
) -> None:
    api, exporter, _ = traced_api
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


async def test_probes_and_scrapes_are_not_traced(traced_api: Traced) -> None:
    api, exporter, _ = traced_api
    exporter.clear()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await api.http.get(path)).status_code == 200
    assert [span.name for span in exporter.get_finished_spans()] == []  # nor readiness' SELECT 1 and PING


async def test_outgoing_httpx_calls_carry_the_trace(traced_api: Traced) -> None:
    """W3C propagation outward: an httpx call made while a span is current sends that trace's `traceparent`
    (to a server of the test's own on 127.0.0.1), and is a client span of the same trace."""
    exporter = traced_api.exporter
    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("traceparent", ""))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """quiet"""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    exporter.clear()
    try:
        tracer = trace.get_tracer("test", tracer_provider=traced_api.provider)
        with tracer.start_as_current_span("work") as span:
            async with httpx.AsyncClient() as client:
                await client.get(f"http://127.0.0.1:{server.server_port}/hook")
        trace_id = format_trace_id(span.get_span_context().trace_id)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    [header] = seen
    assert header.split("-")[1] == trace_id
    [client_span] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert format_span_id(client_span.context.span_id) == header.split("-")[2]
