"""Metrics, JSON logs with trace and span ids, and the redaction that keeps card data out of every log line.

Metrics are process-wide Prometheus collectors (the contract's names, and the operational ones beyond them that
monitoring/README.md lists); the HTTP ones are recorded by the edge middleware, labelled by route template.
Gauges that describe a runtime (pool, keys, build) are read at scrape time through callbacks that
`bind_runtime_metrics` points at the process's one runtime, so the request path pays nothing for them.
`configure_logging` is called once by the CLI.
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import get_args

from opentelemetry import trace as otel_trace
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ghostpay.core import luhn
from ghostpay.core.settings import RateLimitedRole

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series double every counter for no use here

# `version` lets a release's analysis compare the new version's error rate, decline rate (POST /charges answered
# 402) and charge p99 with the stable one's (operator/ghostpay_operator/checks.py).
HTTP_REQUESTS = Counter(
    "ghostpay_http_requests_total", "HTTP requests answered", ["service", "route", "method", "status", "version"]
)
HTTP_DURATION = Histogram(
    "ghostpay_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "route", "method", "version"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CARDS_ISSUED = Counter("ghostpay_cards_issued_total", "Single-use cards issued")
CHARGES = Counter("ghostpay_charges_total", "Charge attempts by outcome", ["status", "decline_code"])
# Approved volume in the currency's major units (the ISO 4217 exponent applied), so USD and JPY read alike.
CHARGED_AMOUNT = Counter("ghostpay_charged_amount_total", "Approved charge volume in major units", ["currency"])
RATE_LIMITED = Counter("ghostpay_rate_limited_total", "Requests refused by the rate limiter", ["role"])
for _role in get_args(RateLimitedRole):  # a series per role from the start: rate() needs the zero before the first
    RATE_LIMITED.labels(role=_role)
RATE_LIMITER_ERRORS = Counter(
    "ghostpay_rate_limiter_errors_total", "Requests let through because Redis could not be asked"
)
KEY_REFRESH_FAILURES = Counter(
    "ghostpay_key_refresh_failures_total", "Refreshes of the published signing keys that failed (cache kept)"
)
KEY_VERSIONS_PUBLISHED = Counter(
    "ghostpay_key_versions_published_total", "Signing key versions that appeared on a refresh (rotations seen)"
)
OUTBOX_RELAYED = Counter("ghostpay_outbox_events_relayed_total", "Outbox events folded into analytics")
# Measured by the relay loop after each pass, whether the pass worked or not, so a relay that keeps failing
# shows a growing age (monitoring/prometheus/rules.yaml: GhostPayOutboxLag).
OUTBOX_OLDEST_AGE = Gauge(
    "ghostpay_outbox_oldest_unrelayed_age_seconds", "Age of the oldest outbox event not yet relayed (0 when none waits)"
)

# A callback read at scrape time (the runtime points it at its KeyCache): NaN before any key is published.
SIGNING_KEY_AGE = Gauge(
    "ghostpay_signing_key_age_seconds", "Age of the signing key version that signs new tokens (its creation time)"
)
SIGNING_KEY_AGE.set_function(lambda: float("nan"))
# The pool is read at scrape time; in_use + idle is the pool's size (asyncpg opens connections lazily).
DB_POOL = Gauge("ghostpay_db_pool_connections", "PostgreSQL pool connections by state", ["state"])
DB_POOL_MAX = Gauge("ghostpay_db_pool_max_connections", "The PostgreSQL pool's size limit")
# The one Redis round trip of every API request (the GCRA script), failures included.
RATE_LIMITER_DURATION = Histogram(
    "ghostpay_rate_limiter_duration_seconds",
    "Time the rate limiter's Redis round trip took",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
# ghostpay_build_info{version, release} 1: the package's version and the release the process belongs to
# (GHOSTPAY_VERSION, which the operator sets to spec.version; the HTTP metrics' `version` label).
BUILD_INFO = Info("ghostpay_build", "The GhostPay build this process runs")


class SigningKeyMetrics(Collector):
    """ghostpay_signing_key_info{kid} 1 for the key version that signs new tokens now (none before keys load),
    and ghostpay_signing_key_max_age_seconds, the oldest that key may get before its rotation is overdue
    (GHOSTPAY_SIGNING_KEY_MAX_AGE_SECONDS, which the operator derives from spec.keyRotation.schedule): without
    it the series is absent, so GhostPaySigningKeyTooOld has nothing to compare with."""

    def __init__(self) -> None:
        self.active_kid: Callable[[], str | None] = lambda: None
        self.max_age: float | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "ghostpay_signing_key_info", "The signing key version that signs new tokens (value 1)", labels=["kid"]
        )
        kid = self.active_kid()
        if kid is not None:
            info.add_metric([kid], 1)
        yield info
        if self.max_age is not None:
            yield GaugeMetricFamily(
                "ghostpay_signing_key_max_age_seconds",
                "The oldest the signing key may be before its rotation is overdue",
                value=self.max_age,
            )


SIGNING_KEY_METRICS = SigningKeyMetrics()
REGISTRY.register(SIGNING_KEY_METRICS)


def bind_runtime_metrics(
    pool_size: Callable[[], int],
    pool_idle: Callable[[], int],
    pool_max: int,
    key_age: Callable[[], float],
    active_kid: Callable[[], str | None],
    package_version: str,
    release: str,
    key_max_age: float | None,
) -> None:
    """Point the scrape-time gauges at a runtime (a process holds one)."""
    DB_POOL.labels(state="in_use").set_function(lambda: pool_size() - pool_idle())
    DB_POOL.labels(state="idle").set_function(pool_idle)
    DB_POOL_MAX.set(pool_max)
    SIGNING_KEY_AGE.set_function(key_age)
    SIGNING_KEY_METRICS.active_kid = active_kid
    SIGNING_KEY_METRICS.max_age = key_max_age
    BUILD_INFO.info({"version": package_version, "release": release})


# The request's trace and span ids as the edge saw them, for the log lines of that request.
trace_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")
span_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("span_id", default="")

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE_ID, _INVALID_SPAN_ID = "0" * 32, "0" * 16  # W3C trace context: all zeros is no id


def trace_from_traceparent(header: str | None) -> tuple[str, str, str]:
    """(trace id, span id, traceparent for the response) without OpenTelemetry: continue the caller's W3C
    trace (its trace id and sampled flag) under a span id of our own, or start a new trace."""
    match = _TRACEPARENT.match(header) if header else None
    if match and match.group(1) != _INVALID_TRACE_ID:
        trace_id, span_id, flags = match.group(1), _random_hex(64), match.group(3)
    else:
        (trace_id, span_id), flags = _new_ids(), "01"
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{flags}"


def _random_hex(bits: int) -> str:
    """A non-zero random id as W3C trace context writes it. Not a secret (it goes out in `traceparent`), so from
    `random` as OpenTelemetry's own id generator does: no system call per request, as `secrets` would make."""
    return f"{random.getrandbits(bits) or 1:0{bits // 4}x}"


def _new_ids() -> tuple[str, str]:
    """A new trace's id and its first span's id, both from one draw (most requests start a trace, so this runs on
    nearly every one), drawn again in the one case in 2^64 that either is all zeros."""
    while True:
        ids = f"{random.getrandbits(192):048x}"
        trace_id, span_id = ids[:32], ids[32:]
        if trace_id != _INVALID_TRACE_ID and span_id != _INVALID_SPAN_ID:
            return trace_id, span_id


def request_trace(header: str | None) -> tuple[str, str, str]:
    """(trace id, span id, traceparent for the response) of this request: the OpenTelemetry server span's when
    tracing is on (its instrumentation already read `traceparent`), else made by hand from the header."""
    context = otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return trace_from_traceparent(header)
    trace_id, span_id = otel_trace.format_trace_id(context.trace_id), otel_trace.format_span_id(context.span_id)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{int(context.trace_flags):02x}"


def current_ids() -> tuple[str | None, str | None]:
    """(trace id, span id) for a log line: the current OpenTelemetry span's, else the request's."""
    context = otel_trace.get_current_span().get_span_context()
    if context.is_valid:
        return otel_trace.format_trace_id(context.trace_id), otel_trace.format_span_id(context.span_id)
    return trace_id_var.get() or None, span_id_var.get() or None


# Anything that looks like a card number (13-19 digits, optionally spaced) or a CVV field.
_PAN_LIKE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_CVV_FIELD = re.compile(r"(?i)([\"']?cvv[\"']?\s*[:=]\s*[\"']?)\d{3,4}")


def _mask_pan(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return "[REDACTED-PAN]" if luhn.is_valid(digits) else match.group(0)


def redact(text: str) -> str:
    """The one place card data is scrubbed from anything that leaves the process as text: Luhn-valid runs of
    13-19 digits (so ids and timestamps survive) and CVV fields."""
    return _CVV_FIELD.sub(r"\1[REDACTED]", _PAN_LIKE.sub(_mask_pan, text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry["trace_id"], entry["span_id"] = current_ids()
        for field in ("service", "route", "method", "status", "duration_ms"):
            if hasattr(record, field):
                entry[field] = getattr(record, field)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["stack"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the edge middleware logs requests itself
