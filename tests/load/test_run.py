"""`make load` for real, shortened: a headless Locust run against its own `ghostpay dev` (embedded PostgreSQL and
Redis), in a subprocess as `make load` runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}  # see conftest.py
    command = [sys.executable, "-m", "load.run", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)


def test_a_short_run_serves_the_mix_and_only_the_poller_is_rate_limited(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    # 3 of the users are pollers on one client; 5 merchants, a client each, for 6 s issue and charge cards (each of
    # them charging none is rare). A budget of 6/s (burst 12) is met by the pollers even when the server answers
    # only 20 requests a second (a busy machine: 112 polls in 6 s), and never by a person-paced merchant (≈1/s).
    result = _run(
        "--duration", "6s", "--users", "8", "--merchants", "5", "--merchant-limit", "6/12", "--out", str(out)
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failures"] == 0 and report["failure_samples"] == [] and report["task_errors"] == []
    assert report["rate_limited"]["total"] > 0
    assert set(report["rate_limited"]["by_kind"]) == {"polling merchant"}  # the others stay within budget
    served = {e["name"] for e in report["endpoints"] if not e["name"].endswith("(429)")}
    assert {"/auth/token", "/cards", "/charges", "/cards?limit=20", "/analytics/summary"} <= served
    consistency = report["consistency"]
    assert consistency["agree"] and consistency["clients_saw"]["approved"] > 0
    assert consistency["analytics"]["cards_issued"] == consistency["clients_saw"]["cards_issued"]
    assert report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"] > 0
    assert "p95" in result.stdout and "429 rate limited" in result.stdout
    # Locust's own HTML report beside the JSON one (issue 13), with the endpoints the run served
    html = (tmp_path / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html>") and "</html>" in html
    assert "/charges" in html


def test_a_bad_duration_is_refused_before_anything_starts(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = _run("--duration", "soon", "--out", str(out))
    assert result.returncode == 2 and "--duration" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("budget", ["fast", "5", "0/10", "5/0", "-1/3"])
def test_a_bad_merchant_limit_is_refused_before_anything_starts(tmp_path: Path, budget: str) -> None:
    out = tmp_path / "report.json"
    result = _run("--merchant-limit", budget, "--out", str(out))
    assert result.returncode == 2 and "--merchant-limit" in result.stderr
    assert not out.exists()
