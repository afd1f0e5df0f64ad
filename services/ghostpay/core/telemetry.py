"""Metrics, JSON logs with trace ids, and the redaction that keeps card data out of every log line.

Metrics are process-wide Prometheus collectors (the contract's names); the HTTP ones are recorded by the edge
middleware, labelled by route template. `configure_logging` is called once by the CLI.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
from datetime import UTC, datetime
from typing import get_args

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

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

trace_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def trace_from_traceparent(header: str | None) -> tuple[str, str]:
    """(trace id, traceparent for the response): continue the caller's W3C trace or start a new one."""
    match = _TRACEPARENT.match(header or "")
    trace_id = match.group(1) if match and match.group(1) != "0" * 32 else secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


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
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "trace_id": trace_id_var.get() or None,
        }
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
