"""Release analysis, asked of Prometheus: the release state machine's `ReleaseFacts.analysis`.

`judged` measures what `checks` describes — the new version's 5xx share, and its decline rate and charge p99
against the stable version's over the same window — and returns `checks.judge`'s result: None (no error-rate data
yet), or an `AnalysisResult` that passes or names the check that failed. The error rate is

    (sum(rate(ghostpay_http_requests_total{version="V",status=~"5.."}[1m])) or vector(0))
      / sum(rate(ghostpay_http_requests_total{version="V"}[1m]))

The `or vector(0)` matters: a version that never answered a 5xx has no 5xx series at all, and without it the
division would be empty ("no data") forever instead of 0 ("pass"). A version with no traffic in the window still
gives no data (an empty result, or NaN for 0/0), which is `None`: not measured yet, so the release waits.

`verdict` and `parse_result` are pure (the queries are built in `checks`); `value` does one HTTP GET and never
raises: Prometheus down, slow or answering nonsense is `None` too, logged once per outage (a warning when it
starts, an info line when it ends), not once per reconcile pass. `measure` is the error-rate verdict alone. No
Kubernetes client here (an import-linter contract keeps it so); httpx only.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import httpx

from ghostpay_operator.checks import Measured, charge_p99_query, decline_rate_query, error_rate_query, judge
from ghostpay_operator.spec import ReleaseSpec
from ghostpay_operator.vocabulary import FAIL, PASS, AnalysisResult, AnalysisVerdict

__all__ = ["error_rate", "error_rate_query", "judged", "measure", "parse_result", "value", "verdict"]

log = logging.getLogger("ghostpay_operator.analysis")

# Prometheus URLs currently failing, so an outage is logged once rather than on every reconcile pass.
_failing: set[str] = set()


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


async def value(
    prometheus_url: str,
    query: str,
    client: httpx.AsyncClient | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109  # the HTTP timeout handed to httpx, per request
) -> float | None:
    """The single value `query` gives now (NaN: 0/0, no traffic), None when unknown. Never raises for
    Prometheus' sake: unreachable, an HTTP error or an unreadable answer is logged (once per outage) and None."""
    url = prometheus_url.rstrip("/") + "/api/v1/query"
    try:
        if client is None:
            async with httpx.AsyncClient(timeout=timeout) as own:
                response = await own.get(url, params={"query": query})
        else:
            response = await client.get(url, params={"query": query}, timeout=timeout)
        response.raise_for_status()
        result = parse_result(response.json())
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
    return result


async def error_rate(
    prometheus_url: str,
    version: str,
    client: httpx.AsyncClient | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109  # the HTTP timeout handed to httpx, per request
    window: str = "1m",
) -> float | None:
    """The current error rate of `version` (0..1, or NaN with no traffic), None when unknown."""
    return await value(prometheus_url, error_rate_query(version, window), client, timeout)


async def judged(
    prometheus_url: str,
    version: str,
    stable_version: str,
    limits: ReleaseSpec,
    client: httpx.AsyncClient | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109  # the HTTP timeout handed to httpx, per request
) -> AnalysisResult | None:
    """`ReleaseFacts.analysis` for a release from `stable_version` to `version`: every check of `checks.judge`
    over the same window (five queries; the payment ones only once the error rate has data)."""
    error = await error_rate(prometheus_url, version, client, timeout)
    if error is None or math.isnan(error):
        return None

    async def ask(query: str) -> float | None:
        return await value(prometheus_url, query, client, timeout)

    measured = Measured(
        error_rate=error,
        decline_rate=await ask(decline_rate_query(version)),
        stable_decline_rate=await ask(decline_rate_query(stable_version)),
        charge_p99=await ask(charge_p99_query(version)),
        stable_charge_p99=await ask(charge_p99_query(stable_version)),
    )
    return judge(version, stable_version, measured, limits)


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
