"""The release analysis' checks, pure: the PromQL of each measurement, and the verdict from the measured values.

A release's new version is judged over one window (1m) on three things, each against a threshold of
`spec.release.analysis`:

- `error_rate`: the 5xx share of all its HTTP requests, at most `maxErrorRate`;
- `decline_rate`: the share of its `POST /charges` answered 402 (card declined), at most `maxDeclineRateIncrease`
  above the stable version's share over the same window (0 when the stable version took no charges);
- `charge_p99`: the p99 of its `POST /charges` durations, at most `maxChargeP99Ratio` times the stable version's.

The services label `ghostpay_http_requests_total` and `ghostpay_http_request_duration_seconds` with `version`
(`GHOSTPAY_VERSION`, set on every pod by the operator), which tells the two colours' pods apart. Only the error
rate can hold a release (no data yet: wait); the payment checks can only fail it: a version that took no charges
in the window gives them nothing to judge.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ghostpay_operator.spec import ReleaseSpec
from ghostpay_operator.vocabulary import FAIL, PASS, AnalysisResult

REQUESTS = "ghostpay_http_requests_total"
DURATION_BUCKETS = "ghostpay_http_request_duration_seconds_bucket"
CHARGES = 'service="charges",route="/charges",method="POST"'
DECLINED = "402"  # CardDeclined: the only 402 GhostPay answers
WINDOW = "1m"

_DURATION = re.compile(r"^(?:[0-9]+(?:ms|s|m|h|d|w|y))+$")


def _label_value(value: str) -> str:
    """A PromQL string literal's body: backslashes, double quotes and newlines escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _window(window: str) -> str:
    if not _DURATION.match(window):
        raise ValueError(f"not a Prometheus duration: {window!r}")
    return window


def _share(selector: str, part: str, window: str) -> str:
    """The share of `part` among the requests `selector` picks; `or vector(0)`: no series of `part` is 0, not
    "no data" (a version that never answered a 5xx has no 5xx series at all)."""
    part_rate = f"sum(rate({REQUESTS}{{{selector},{part}}}[{window}]))"
    total = f"sum(rate({REQUESTS}{{{selector}}}[{window}]))"
    return f"({part_rate} or vector(0)) / {total}"


def error_rate_query(version: str, window: str = WINDOW) -> str:
    """The 5xx share of all HTTP requests the pods of `version` answered over `window`."""
    return _share(f'version="{_label_value(version)}"', 'status=~"5.."', _window(window))


def decline_rate_query(version: str, window: str = WINDOW) -> str:
    """The share of the `POST /charges` the pods of `version` answered with 402 (declined) over `window`."""
    return _share(f'{CHARGES},version="{_label_value(version)}"', f'status="{DECLINED}"', _window(window))


def charge_p99_query(version: str, window: str = WINDOW) -> str:
    """The p99 (seconds) of the `POST /charges` durations of the pods of `version` over `window`."""
    selector = f'{CHARGES},version="{_label_value(version)}"'
    return f"histogram_quantile(0.99, sum by (le) (rate({DURATION_BUCKETS}{{{selector}}}[{_window(window)}])))"


@dataclass(frozen=True)
class Measured:
    """The values Prometheus gave (None or NaN: no data), the new version's and the stable one's."""

    error_rate: float | None
    decline_rate: float | None = None
    stable_decline_rate: float | None = None
    charge_p99: float | None = None
    stable_charge_p99: float | None = None


def _known(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def judge(version: str, stable_version: str, measured: Measured, limits: ReleaseSpec) -> AnalysisResult | None:
    """The verdict on `version` against `stable_version`: FAIL on the first check over its threshold, PASS when
    none is, None while the error rate has no data (the release then waits, within its progress deadline)."""
    error_rate = _known(measured.error_rate)
    if error_rate is None:
        return None
    if error_rate > limits.max_error_rate:
        message = f"The error rate of {version} was {error_rate:.3g}, above maxErrorRate {limits.max_error_rate:g}."
        return AnalysisResult(FAIL, "error_rate", message)
    declines = _known(measured.decline_rate)
    baseline = _known(measured.stable_decline_rate) or 0.0
    if declines is not None and declines - baseline > limits.max_decline_rate_increase:
        message = (
            f"{version} declined {declines:.1%} of its charges against {baseline:.1%} for {stable_version}: more "
            f"than maxDeclineRateIncrease {limits.max_decline_rate_increase:g} above it."
        )
        return AnalysisResult(FAIL, "decline_rate", message)
    p99, stable_p99 = _known(measured.charge_p99), _known(measured.stable_charge_p99)
    if p99 is not None and stable_p99 and p99 / stable_p99 > limits.max_charge_p99_ratio:
        message = (
            f"The charge p99 of {version} was {p99 * 1000:.0f} ms against {stable_p99 * 1000:.0f} ms for "
            f"{stable_version}: more than maxChargeP99Ratio {limits.max_charge_p99_ratio:g} times it."
        )
        return AnalysisResult(FAIL, "charge_p99", message)
    return AnalysisResult(PASS, "all", f"{version} is within every analysis threshold against {stable_version}.")
