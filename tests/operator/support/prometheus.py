"""A real Prometheus for the analysis and release tests: Debian's `prometheus` (installed by
tools/prometheus/install.sh when it is not on PATH) on 127.0.0.1, scraping every second a metrics endpoint served
from the test process, where a background thread counts requests of two versions at controlled error shares:
2.0.0 clean, 3.0.0 with exactly 20% 5xx."""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter, start_http_server

from ghostpay_operator import analysis
from tests.support.procs import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
INSTALL_SCRIPT = REPO_ROOT / "tools" / "prometheus" / "install.sh"
READY_TIMEOUT = 30.0
DATA_TIMEOUT = 60.0
CLEAN, FAULTY, SILENT = "2.0.0", "3.0.0", "9.9.9"


def prometheus_binary(name: str = "prometheus") -> str:
    """`name` (prometheus, promtool) from PATH, installed first (Debian's package) by tools/prometheus/install.sh
    if missing."""
    found = shutil.which(name)
    if found:
        return found
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    found = shutil.which(name)
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


def start_prometheus(directory: Path, target_port: int, *more_ports: int) -> Prometheus:
    """Prometheus on a free 127.0.0.1 port, scraping 127.0.0.1:`target_port` (and `more_ports`) every second;
    returns once ready."""
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
        f"      - targets: {[f'127.0.0.1:{port}' for port in (target_port, *more_ports)]}\n"
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
