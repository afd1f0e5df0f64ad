"""Release analysis: the new version's HTTP error rate, asked of Prometheus, as the release state machine's verdict.

`release.decide` reads `ReleaseFacts.analysis` as `None` (not configured or no data yet), `"pass"` or `"fail"`; this
module produces it. The error rate is the 5xx share of `ghostpay_http_requests_total` over a short window, for the
pods of one version only (the services label their metrics with `version`, from the `GHOSTPAY_VERSION` environment
variable the operator sets on every pod):

    (sum(rate(ghostpay_http_requests_total{version="V",status=~"5.."}[1m])) or vector(0))
      / sum(rate(ghostpay_http_requests_total{version="V"}[1m]))

The `or vector(0)` matters: a version that never answered a 5xx has no 5xx series at all, and without it the
division would be empty ("no data") forever instead of 0 ("pass"). A version with no traffic in the window still
gives no data (an empty result, or NaN for 0/0), which is `None`: not measured yet, so the release waits.

`error_rate_query` and `verdict` are pure; `measure` does one HTTP GET and never raises: Prometheus down, slow or
answering nonsense is `None` too, logged once per outage (a warning when it starts, an info line when it ends),
not once per reconcile pass. No Kubernetes client here (an import-linter contract keeps it so); httpx only.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

import httpx

from ghostpay_operator.vocabulary import FAIL, PASS, AnalysisVerdict

log = logging.getLogger("ghostpay_operator.analysis")

METRIC = "ghostpay_http_requests_total"

_DURATION = re.compile(r"^(?:[0-9]+(?:ms|s|m|h|d|w|y))+$")

# Prometheus URLs currently failing, so an outage is logged once rather than on every reconcile pass.
_failing: set[str] = set()


def _label_value(value: str) -> str:
    """A PromQL string literal's body: backslashes, double quotes and newlines escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def error_rate_query(version: str, window: str = "1m") -> str:
    """The PromQL for the 5xx share of `ghostpay_http_requests_total` among the pods of `version`, over `window`."""
    if not _DURATION.match(window):
        raise ValueError(f"not a Prometheus duration: {window!r}")
    selector = f'version="{_label_value(version)}"'
    errors = f'sum(rate({METRIC}{{{selector},status=~"5.."}}[{window}]))'
    total = f"sum(rate({METRIC}{{{selector}}}[{window}]))"
    return f"({errors} or vector(0)) / {total}"


def verdict(value: float | None, max_error_rate: float) -> AnalysisVerdict | None:
    """PASS when the error rate is at most `max_error_rate`, FAIL above it; None when there is no data yet (no
    result, or NaN: no requests in the window)."""
    if value is None or math.isnan(value):
        return None
    return FAIL if value > max_error_rate else PASS


def parse_result(payload: Any) -> float | None:
    """The single value of an instant-vector (or scalar) answer of `/api/v1/query`; None when there is none.

    Raises ValueError when the answer is not a successful Prometheus query result."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        error = payload.get("error") if isinstance(payload, dict) else None
        raise ValueError(f"query failed: {error or payload!r}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ValueError(f"no data in answer: {payload!r}")
    result_type, result = data.get("resultType"), data.get("result")
    try:
        if result_type == "scalar":
            return float(result[1])  # type: ignore[index]
        if result_type == "vector" and isinstance(result, list):
            if not result:
                return None
            return float(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"unreadable sample in answer: {result!r}") from exc
    raise ValueError(f"unexpected result type {result_type!r}")


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}: {exc.response.text[:200]}"
    return str(exc) or type(exc).__name__


async def error_rate(
    prometheus_url: str,
    version: str,
    client: httpx.AsyncClient | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109  # the HTTP timeout handed to httpx, per request
    window: str = "1m",
) -> float | None:
    """The current error rate of `version` (0..1, or NaN with no traffic), None when unknown. Never raises for
    Prometheus' sake: unreachable, an HTTP error or an unreadable answer is logged (once per outage) and None."""
    url = prometheus_url.rstrip("/") + "/api/v1/query"
    params = {"query": error_rate_query(version, window)}
    try:
        if client is None:
            async with httpx.AsyncClient(timeout=timeout) as own:
                response = await own.get(url, params=params)
        else:
            response = await client.get(url, params=params, timeout=timeout)
        response.raise_for_status()
        value = parse_result(response.json())
    except (httpx.HTTPError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        if prometheus_url not in _failing:
            _failing.add(prometheus_url)
            reason = _describe(exc)
            log.warning("release analysis: cannot ask Prometheus at %s: %s", prometheus_url, reason)
        else:
            log.debug("release analysis: Prometheus at %s still failing: %s", prometheus_url, exc)
        return None
    if prometheus_url in _failing:
        _failing.discard(prometheus_url)
        log.info("release analysis: Prometheus at %s answers again", prometheus_url)
    return value


async def measure(
    prometheus_url: str,
    version: str,
    max_error_rate: float,
    client: httpx.AsyncClient | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109  # the HTTP timeout handed to httpx, per request
) -> AnalysisVerdict | None:
    """`ReleaseFacts.analysis` for a release to `version`: "pass", "fail", or None (no data yet, or Prometheus
    unavailable — the release then waits, and its progress deadline still applies)."""
    return verdict(await error_rate(prometheus_url, version, client, timeout), max_error_rate)
