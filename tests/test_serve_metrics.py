"""`ghostpay serve` answers Prometheus scrapes on a port of its own (finding 9e): the public port, which the operator's
Services expose, has no `/metrics`. `ghostpay dev` keeps `/metrics` on its one port (tests/core/test_telemetry.py
and the fuzzing run read it there)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS
from tests.support import procs
from tests.support.servers import Servers

pytestmark = pytest.mark.slow


def test_finding_9e_serve_answers_metrics_on_the_metrics_port_only(
    database_url: str, servers: Servers, keys_dir: Path, tmp_path: Path
) -> None:
    metrics_port = procs.free_port()
    env = procs.service_env(
        database_url,
        servers.redis_url,
        keys_dir,
        ADMIN_ID,
        ADMIN_SECRET,
        GENEROUS_LIMITS,
        GHOSTPAY_METRICS_PORT=str(metrics_port),
    )
    proc = procs.serve("charges", env, tmp_path).start()
    try:
        with httpx.Client(timeout=10.0) as http:
            assert http.get(f"{proc.url}/charges").status_code == 401  # one request, to be counted
            public = http.get(f"{proc.url}/metrics")
            assert public.status_code == 404, public.text
            assert public.headers["content-type"].startswith("application/problem+json")
            scraped = http.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain")
            assert 'ghostpay_http_requests_total{method="GET",route="/charges",service="charges",status="401"' in (
                scraped.text
            )
            assert "ghostpay_http_requests_total" not in http.get(f"{proc.url}/healthz").text
    finally:
        exit_code = proc.stop()
    assert exit_code == 0, proc.logs()[-3000:]  # both servers stopped cleanly on SIGTERM
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2.0)


def test_a_taken_metrics_port_stops_serve_at_once(
    database_url: str, servers: Servers, keys_dir: Path, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = procs.service_env(
            database_url,
            servers.redis_url,
            keys_dir,
            ADMIN_ID,
            ADMIN_SECRET,
            GENEROUS_LIMITS,
            GHOSTPAY_HOST="127.0.0.1",
            GHOSTPAY_PORT=str(procs.free_port()),
            GHOSTPAY_METRICS_PORT=str(taken.getsockname()[1]),
        )
        result = procs.run_cli("serve", "charges", env=env, timeout=60)
    assert result.returncode != 0, result.stderr
    assert "address already in use" in result.stderr.lower()
