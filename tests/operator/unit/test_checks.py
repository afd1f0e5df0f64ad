"""The payment-aware release analysis without a server: the PromQL of each check, and the verdict table."""

from __future__ import annotations

import math

import pytest

from ghostpay_operator import checks
from ghostpay_operator.checks import Measured
from ghostpay_operator.spec import ReleaseSpec

LIMITS = ReleaseSpec(max_error_rate=0.01, max_decline_rate_increase=0.05, max_charge_p99_ratio=2.0)


def test_decline_rate_query_is_the_402_share_of_one_versions_charges() -> None:
    assert checks.decline_rate_query("2.0.0") == (
        '(sum(rate(ghostpay_http_requests_total{service="charges",route="/charges",method="POST",version="2.0.0",'
        'status="402"}[1m])) or vector(0))'
        ' / sum(rate(ghostpay_http_requests_total{service="charges",route="/charges",method="POST",version="2.0.0"}'
        "[1m]))"
    )


def test_charge_p99_query_is_one_versions_histogram_quantile() -> None:
    assert checks.charge_p99_query("2.0.0", "30s") == (
        "histogram_quantile(0.99, sum by (le) (rate(ghostpay_http_request_duration_seconds_bucket"
        '{service="charges",route="/charges",method="POST",version="2.0.0"}[30s])))'
    )


@pytest.mark.parametrize("query", [checks.decline_rate_query, checks.charge_p99_query, checks.error_rate_query])
def test_queries_escape_the_version_and_refuse_a_bad_window(query: object) -> None:
    assert callable(query)
    assert 'version="evil\\"} or vector(1) #"' in query('evil"} or vector(1) #')
    with pytest.raises(ValueError, match="duration"):
        query("1.0.0", "1m) or vector(1")


NAN = math.nan


@pytest.mark.parametrize(
    ("measured", "verdict", "check"),
    [
        # the error rate holds the release while it has no data, and fails it above maxErrorRate
        (Measured(None, 1.0, 0.0, 9.0, 0.01), None, None),
        (Measured(NAN, 1.0, 0.0), None, None),
        (Measured(0.02), "fail", "error_rate"),
        (Measured(0.0), "pass", "all"),  # no charges on either version: nothing to judge payments by
        # declines: judged against the stable version's share over the same window
        (Measured(0.0, 1.0, 0.0), "fail", "decline_rate"),  # a version declining every charge, with no 5xx
        (Measured(0.0, 0.08, 0.02), "fail", "decline_rate"),
        (Measured(0.0, 0.07, 0.02), "pass", "all"),  # 5 points above: the limit itself
        (Measured(0.0, 0.30, 0.28), "pass", "all"),  # an issuer declining for everyone is not the release's fault
        (Measured(0.0, 0.06, None), "fail", "decline_rate"),  # the stable version took no charges: 0 as baseline
        (Measured(0.0, 0.04, NAN), "pass", "all"),
        (Measured(0.0, NAN, 0.0), "pass", "all"),  # the new version took no charges
        # p99: a ratio to the stable version's, only when both have one
        (Measured(0.0, 0.0, 0.0, 0.9, 0.02), "fail", "charge_p99"),
        (Measured(0.0, 0.0, 0.0, 0.04, 0.02), "pass", "all"),  # twice as slow: the limit itself
        (Measured(0.0, 0.0, 0.0, 0.9, None), "pass", "all"),
        (Measured(0.0, 0.0, 0.0, 0.9, NAN), "pass", "all"),
        (Measured(0.0, 0.0, 0.0, NAN, 0.02), "pass", "all"),
        # the first failing check decides
        (Measured(0.5, 1.0, 0.0, 0.9, 0.02), "fail", "error_rate"),
        (Measured(0.0, 1.0, 0.0, 0.9, 0.02), "fail", "decline_rate"),
    ],
)
def test_judge(measured: Measured, verdict: str | None, check: str | None) -> None:
    result = checks.judge("2.0.0", "1.0.0", measured, LIMITS)
    got = (result.verdict, result.check) if result else (None, None)
    assert got == (verdict, check)
    if result is not None and result.verdict == "fail":
        assert "2.0.0" in result.message


def test_judge_says_which_threshold_a_failure_passed() -> None:
    declines = checks.judge("2.0.0", "1.0.0", Measured(0.0, 1.0, 0.02), LIMITS)
    assert declines is not None and declines.message == (
        "2.0.0 declined 100.0% of its charges against 2.0% for 1.0.0: more than maxDeclineRateIncrease 0.05 above it."
    )
    slow = checks.judge("2.0.0", "1.0.0", Measured(0.0, None, None, 0.9, 0.02), LIMITS)
    assert slow is not None and "maxChargeP99Ratio 2" in slow.message and "900 ms" in slow.message
    errors = checks.judge("2.0.0", "1.0.0", Measured(0.2), ReleaseSpec(max_error_rate=0.05))
    assert errors is not None and errors.message == "The error rate of 2.0.0 was 0.2, above maxErrorRate 0.05."


def test_thresholds_are_read_from_spec_release_analysis() -> None:
    from ghostpay_operator import spec as specs
    from tests.operator.support.samples import body

    analysis = {"prometheusUrl": "http://p:9090", "maxDeclineRateIncrease": 0.1, "maxChargeP99Ratio": 1.5}
    release = specs.parse(body(release={"analysis": analysis})).release
    assert (release.max_decline_rate_increase, release.max_charge_p99_ratio) == (0.1, 1.5)
    defaults = specs.parse(body(release={"analysis": {"prometheusUrl": "http://p:9090"}})).release
    assert (defaults.max_decline_rate_increase, defaults.max_charge_p99_ratio) == (0.05, 2.0)
