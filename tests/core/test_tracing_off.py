"""Tracing off (issue 13): unless the OTEL_* variables ask for an export nothing is instrumented, so the charge path
pays nothing, and the edge still continues the caller's W3C trace and logs its ids by hand. A setting this build
cannot honour stops the start with a clear message. (Apart from tests/core/test_tracing.py, whose traced app
instruments asyncpg and Redis process-wide until its module ends.)"""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ghostpay.app import create_app
from ghostpay.core import tracing
from ghostpay.core.settings import Settings
from tests.conftest import Api
from tests.support.tracing import CALLER, CALLER_TRACE, Lines


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


async def test_fastapis_own_telemetry_stays_off_under_a_global_provider(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As under `opentelemetry-instrument`, which sets the global provider: FastAPI 0.165 would then trace every
    request itself, beside `core.tracing`'s spans (and it looks the global providers up on every request)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    response = await api.http.get("/cards/card_missing")
    assert response.status_code == 401
    assert exporter.get_finished_spans() == ()
