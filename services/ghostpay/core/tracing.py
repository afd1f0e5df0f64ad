"""OpenTelemetry traces: the SDK and the maintained instrumentations of FastAPI, asyncpg, Redis and httpx.

Configured only by the standard `OTEL_*` variables, and off unless they ask for an export: with none of
`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_TRACES_EXPORTER` set (or with
`OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`) `provider_from_environment` returns None and nothing is
instrumented, so the charge path runs exactly the code it runs without OpenTelemetry installed (the edge still
answers a W3C `traceparent` and logs trace ids, by hand: `telemetry.request_trace`).

When on, the exporter is OTLP over HTTP/protobuf (the OpenTelemetry default protocol; every other OTLP setting —
headers, timeout, compression, certificates — is read by the exporter itself from its `OTEL_EXPORTER_OTLP_*`
variables) or `console`; the sampler comes from `OTEL_TRACES_SAMPLER` (default: parent-based, always on), the
resource from `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (service.name defaults to `ghostpay-<service>`).
Spans are batched and exported off the request path by the SDK's `BatchSpanProcessor` thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping

from fastapi import FastAPI
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

import ghostpay

# Probes and scrapes every few seconds would bury the traces people look for.
_NOT_TRACED = "/healthz$,/readyz$,/metrics$"
_SUPPORTED_PROTOCOLS = ("http/protobuf",)


class TracingConfigError(ValueError):
    """The OTEL_* variables ask for something this build does not do (said at start-up, not at the first span)."""


def _exporter(environ: Mapping[str, str]) -> SpanExporter | None:
    """The exporter the environment asks for, or None when tracing stays off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    endpoint_set = bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if not names:
        names = ["otlp"] if endpoint_set else []  # off when unset: no exporter named and no endpoint
    if not names or names == ["none"]:
        return None
    if len(names) > 1:
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={','.join(names)}: name one exporter (otlp, console, none).")
    if names[0] == "console":
        return ConsoleSpanExporter()
    if names[0] != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={names[0]} is not supported here (otlp, console, none).")
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = protocol or "http/protobuf"
    if protocol not in _SUPPORTED_PROTOCOLS:
        raise TracingConfigError(
            f"OTLP protocol {protocol!r} is not supported here: use http/protobuf (the default; port 4318 of a "
            "collector or Jaeger)."
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def provider_from_environment(service: str, environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A tracer provider exporting where the OTEL_* variables say, or None when they ask for no traces."""
    environ = os.environ if environ is None else environ
    exporter = _exporter(environ)
    if exporter is None:
        return None
    provider = TracerProvider(resource=resource(service))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def resource(service: str) -> Resource:
    """service.name `ghostpay-<service>` and the package's version, unless OTEL_SERVICE_NAME or
    OTEL_RESOURCE_ATTRIBUTES say otherwise (the environment wins)."""
    defaults = Resource({SERVICE_NAME: f"ghostpay-{service}", SERVICE_VERSION: ghostpay.__version__})
    return Resource.create({}).merge(defaults).merge(OTELResourceDetector().detect())


def untraced() -> contextlib.AbstractContextManager[None]:
    """Suppress the client instrumentations here and in every task started inside (tasks copy the context):
    start-up steps and background loops (the outbox relay polls twice a second) would each make a root trace."""
    return suppress_instrumentation()


def instrument(app: FastAPI, provider: TracerProvider) -> Callable[[], None]:
    """Trace `app`'s requests and every asyncpg, Redis and httpx call of the process; returns the undo (the
    client instrumentations patch their libraries process-wide, so the app's lifespan undoes them at its end)."""
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        # the environment's OTEL_PYTHON_FASTAPI_EXCLUDED_URLS, when set, replaces the default list
        excluded_urls=None if os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") else _NOT_TRACED,
        exclude_spans=["receive", "send"],  # a span per ASGI message would outnumber the ones worth reading
    )
    clients = (AsyncPGInstrumentor(), RedisInstrumentor(), HTTPXClientInstrumentor())  # type: ignore[no-untyped-call]
    for instrumentor in clients:
        instrumentor.instrument(tracer_provider=provider)

    def undo() -> None:
        for instrumentor in clients:
            instrumentor.uninstrument()
        FastAPIInstrumentor.uninstrument_app(app)

    return undo
