"""Release analysis: the PromQL and the verdict without a server, then `measure` against a real Prometheus.

The integration tests start Debian's `prometheus` (installed by tools/prometheus/install.sh when it is not on
PATH) on 127.0.0.1, scraping every second a metrics endpoint served from this process, where a background thread
counts requests of two versions at controlled error shares: 2.0.0 clean, 3.0.0 with exactly 20% 5xx.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ghostpay_operator import analysis
from tests.operator.support.prometheus import (
    CLEAN,
    FAULTY,
    SILENT,
    Prometheus,
    Traffic,
    start_prometheus,
    wait_for_data,
)
from tests.support.procs import free_port

# --- pure ------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_outage_log() -> Iterator[None]:
    """Each test starts with no Prometheus known to be failing (the once-per-outage log is module state)."""
    analysis._failing.clear()
    yield
    analysis._failing.clear()


def test_error_rate_query_is_the_5xx_share_of_one_version() -> None:
    assert analysis.error_rate_query("2.0.0") == (
        '(sum(rate(ghostpay_http_requests_total{version="2.0.0",status=~"5.."}[1m])) or vector(0))'
        ' / sum(rate(ghostpay_http_requests_total{version="2.0.0"}[1m]))'
    )


@pytest.mark.parametrize(
    ("version", "window", "selector", "range_"),
    [
        ("1.2.3", "1m", 'version="1.2.3"', "[1m]"),
        ("1.2.3", "30s", 'version="1.2.3"', "[30s]"),
        ("1.2.3", "1m30s", 'version="1.2.3"', "[1m30s]"),
        ('evil"} or vector(1) #', "1m", 'version="evil\\"} or vector(1) #"', "[1m]"),
        ("back\\slash", "5m", 'version="back\\\\slash"', "[5m]"),
    ],
)
def test_error_rate_query_labels_and_window(version: str, window: str, selector: str, range_: str) -> None:
    query = analysis.error_rate_query(version, window)
    assert query.count(selector) == 2
    assert query.count(range_) == 2
    assert 'status=~"5.."' in query


@pytest.mark.parametrize("window", ["", "1", "m", "1 m", "1m]", "-1m", "1m) or vector(1"])
def test_error_rate_query_refuses_a_bad_window(window: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        analysis.error_rate_query("1.0.0", window)


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        (None, 0.01, None),
        (math.nan, 0.01, None),
        (0.0, 0.01, "pass"),
        (0.0, 0.0, "pass"),
        (0.01, 0.01, "pass"),
        (0.0100001, 0.01, "fail"),
        (0.2, 0.01, "fail"),
        (0.2, 0.25, "pass"),
        (1.0, 0.99, "fail"),
        (1.0, 1.0, "pass"),
        (0.001, 0.0, "fail"),
    ],
)
def test_verdict(value: float | None, limit: float, expected: str | None) -> None:
    assert analysis.verdict(value, limit) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, None),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.25"]}]}},
            0.25,
        ),
        ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0"]}]}}, 0.0),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1, "0.5"]}}, 0.5),
    ],
)
def test_parse_result(payload: object, expected: float | None) -> None:
    assert analysis.parse_result(payload) == expected


def test_parse_result_nan_is_no_data() -> None:
    value = analysis.parse_result(
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}}
    )
    assert value is not None and math.isnan(value)
    assert analysis.verdict(value, 0.01) is None


@pytest.mark.parametrize(
    "payload",
    [
        {"status": "error", "errorType": "bad_data", "error": "parse error"},
        {"status": "success"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]}},
        ["not", "a", "dict"],
    ],
)
def test_parse_result_refuses_nonsense(payload: object) -> None:
    with pytest.raises(ValueError):
        analysis.parse_result(payload)


def _mock(status: int, body: object | bytes) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query"
        assert 'version="3.0.0"' in request.url.params["query"]
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _vector(value: str) -> dict[str, object]:
    return {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, value]}]}}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, _vector("0.2"), "fail"),
        (200, _vector("0"), "pass"),
        (200, _vector("NaN"), None),
        (200, {"status": "success", "data": {"resultType": "vector", "result": []}}, None),
        (200, b"<html>not json</html>", None),
        (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}, None),
        (503, b"Service Unavailable", None),
    ],
)
async def test_measure_with_a_given_client(status: int, body: object | bytes, expected: str | None) -> None:
    async with _mock(status, body) as client:
        assert await analysis.measure("http://prometheus.invalid:9090", FAULTY, 0.01, client=client) == expected


async def test_prometheus_unreachable_is_none_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level(logging.DEBUG, logger="ghostpay_operator.analysis"):
        for _ in range(3):
            assert await analysis.measure(url, CLEAN, 0.01, timeout=2.0) is None
    # Only the analysis's own records: a background task of an earlier test on this worker (the analytics outbox
    # relay) may log a warning meanwhile, and caplog catches every logger.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "ghostpay_operator.analysis"]
    assert len(warnings) == 1 and url in warnings[0].getMessage()


async def test_recovery_is_logged_and_a_new_outage_warns_again(caplog: pytest.LogCaptureFixture) -> None:
    url = "http://prometheus.invalid:9090"
    with caplog.at_level(logging.INFO, logger="ghostpay_operator.analysis"):
        async with _mock(503, b"down") as client:
            assert await analysis.measure(url, FAULTY, 0.01, client=client) is None
            assert await analysis.measure(url, FAULTY, 0.01, client=client) is None
        async with _mock(200, _vector("0")) as client:
            assert await analysis.measure(url, FAULTY, 0.01, client=client) == "pass"
        async with _mock(503, b"down") as client:
            assert await analysis.measure(url, FAULTY, 0.01, client=client) is None
    levels = [r.levelno for r in caplog.records if r.name == "ghostpay_operator.analysis"]
    assert levels == [logging.WARNING, logging.INFO, logging.WARNING]


# --- a real Prometheus ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traffic() -> Iterator[Traffic]:
    source = Traffic()
    try:
        yield source
    finally:
        source.stop()


@pytest.fixture(scope="module")
def prometheus(traffic: Traffic) -> Iterator[Prometheus]:
    directory = Path(tempfile.mkdtemp(prefix="gp-prom-", dir="/tmp"))
    server = start_prometheus(directory, traffic.port)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
async def test_clean_version_passes(prometheus: Prometheus) -> None:
    assert await wait_for_data(prometheus.url, CLEAN) == 0.0
    assert await analysis.measure(prometheus.url, CLEAN, 0.01) == "pass"


@pytest.mark.slow
async def test_faulty_version_fails(prometheus: Prometheus) -> None:
    assert await wait_for_data(prometheus.url, FAULTY) == pytest.approx(0.2, abs=0.02)
    assert await analysis.measure(prometheus.url, FAULTY, 0.01) == "fail"
    assert await analysis.measure(prometheus.url, FAULTY, 0.25) == "pass"  # the threshold is the limit
    async with httpx.AsyncClient() as client:  # a shared client (the operator's) works the same
        assert await analysis.measure(prometheus.url, FAULTY, 0.01, client=client) == "fail"


@pytest.mark.slow
async def test_version_without_traffic_has_no_verdict(prometheus: Prometheus) -> None:
    await wait_for_data(prometheus.url, CLEAN)  # Prometheus has data, just none for this version
    assert await analysis.measure(prometheus.url, SILENT, 0.01) is None


@pytest.mark.slow
async def test_stopped_prometheus_gives_none(traffic: Traffic, caplog: pytest.LogCaptureFixture) -> None:
    directory = Path(tempfile.mkdtemp(prefix="gp-prom-", dir="/tmp"))
    server = start_prometheus(directory, traffic.port)
    try:
        await wait_for_data(server.url, FAULTY)
        assert await analysis.measure(server.url, FAULTY, 0.01) == "fail"
        server.stop()
        with caplog.at_level(logging.WARNING, logger="ghostpay_operator.analysis"):
            assert await analysis.measure(server.url, FAULTY, 0.01, timeout=2.0) is None
            assert await analysis.measure(server.url, FAULTY, 0.01, timeout=2.0) is None
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
