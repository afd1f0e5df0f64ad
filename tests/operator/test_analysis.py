"""Release analysis: the PromQL and the verdict without a server, then `measure` against a real Prometheus.

The integration tests start Debian's `prometheus` (installed by tools/prometheus/install.sh when it is not on
PATH) on 127.0.0.1, scraping every second a metrics endpoint served from this process, where a background thread
counts requests of two versions at controlled error shares: 2.0.0 clean, 3.0.0 with exactly 20% 5xx.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from ghostpay_operator import analysis
from tests.procs import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "tools" / "prometheus" / "install.sh"
READY_TIMEOUT = 30.0
DATA_TIMEOUT = 60.0
CLEAN, FAULTY, SILENT = "2.0.0", "3.0.0", "9.9.9"


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
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
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
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.INFO, logging.WARNING]


# --- a real Prometheus ---------------------------------------------------------------------------------------------


def prometheus_binary() -> str:
    """`prometheus` from PATH, installed first (Debian's package) by tools/prometheus/install.sh if missing."""
    found = shutil.which("prometheus")
    if found:
        return found
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    found = shutil.which("prometheus")
    if result.returncode != 0 or not found:
        raise RuntimeError(f"{INSTALL_SCRIPT} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return found


class Traffic:
    """`ghostpay_http_requests_total` as the services expose it (plus `version`), served on 127.0.0.1, counted by a
    background thread: per tick, 10 requests of CLEAN all 200, and 10 of FAULTY of which 2 answer 500."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ghostpay_http_requests_total",
            "HTTP requests answered",
            ["service", "route", "method", "status", "version"],
            registry=self.registry,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self.server, self._server_thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.port: int = self.server.server_port
        self._thread.start()

    def _count(self, version: str, status: str, n: int) -> None:
        self.requests.labels("cards", "/v1/cards", "POST", status, version).inc(n)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._count(CLEAN, "200", 10)
            self._count(FAULTY, "200", 8)
            self._count(FAULTY, "500", 2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.shutdown()
        self.server.server_close()
        self._server_thread.join(timeout=5)


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_prometheus(directory: Path, target_port: int) -> Prometheus:
    """Prometheus on a free 127.0.0.1 port, scraping 127.0.0.1:`target_port` every second; returns once ready."""
    binary = prometheus_binary()
    (directory / "data").mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: ghostpay\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target_port}']\n"
    )
    port = free_port()
    log_path = directory / "prometheus.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = Prometheus(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited ({process.returncode}); log:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"prometheus not ready within {READY_TIMEOUT}s; log:\n{server.log_tail()}")


async def wait_for_data(url: str, version: str) -> float:
    """The error rate of `version` once Prometheus has enough samples for `rate` (bounded by DATA_TIMEOUT)."""
    deadline = time.monotonic() + DATA_TIMEOUT
    while time.monotonic() < deadline:
        value = await analysis.error_rate(url, version, timeout=2.0)
        if value is not None and not math.isnan(value):
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"no error rate for {version} from {url} within {DATA_TIMEOUT}s")


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
