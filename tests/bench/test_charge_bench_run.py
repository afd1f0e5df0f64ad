"""A short whole run of `make bench`'s benchmark (seconds, not minutes): every phase, the floor beside the
service, wrk as the load generator, the database check, the JSON's headline keys and the PNG beside it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from bench.disk import device_of
from bench.environment import environment

from bench import charge_bench

pytestmark = pytest.mark.slow


def test_a_short_run_reports_the_floor_and_stays_consistent(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["--concurrency", "4", "--seconds", "1", "--warmup", "1", "--cards", "3000", "--out", str(out)]
    assert charge_bench.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["service_charges_per_second"] > 0 and report["floor_charges_per_second"] > 0
    assert report["ratio_service_to_floor"] == pytest.approx(
        report["service_charges_per_second"] / report["floor_charges_per_second"], rel=0.01
    )
    assert report["service_cpu_ms_per_charge"] > 0
    assert report["bare_charges_per_second"] > 0 and report["bare_cpu_ms_per_charge"] > 0
    assert report["service_p99_ms_at_half_max_throughput"] is not None
    assert set(report["half_load"]) == {"service", "floor", "bare", "pgbench"}
    waited = report["cpu_wait_ms_per_charge_at_half_max"]
    assert set(waited) == {"service", "floor", "bare", "postgres", "redis"}
    if device_of(Path("/tmp")) is not None:  # the bench's data is under /tmp, on that disk
        assert report["disk_watched"] == str(device_of(Path("/tmp")))
        assert set(report["half_load"]["service"]["disk"]) == {"longest_stall_ms", "stalled_ms", "iowait_cores"}
        assert set(report["longest_disk_stall_ms_at_half_max"]) == {"service", "floor", "bare", "pgbench"}
    else:
        assert report["disk_watched"] is None and report["half_load"]["service"]["disk"] == {}
    check = report["database_check"]
    assert check["cards_approved_twice"] == 0
    assert check["service"]["consistent"] and check["floor"]["consistent"]
    assert check["floor"]["approved"] >= check["floor"]["answered_201"] > 0
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_the_environment_gives_the_servers_the_pool_size_and_data_directory_asked_for(tmp_path: Path) -> None:
    with environment(cards_per_batch=10, db_pool=3, data_dir=tmp_path) as env:
        metrics_port = env.service.args[env.service.args.index("--metrics-port") + 1]
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert env.root.parent == tmp_path and (env.root / "pg" / "postmaster.pid").exists()
    assert "ghostpay_db_pool_max_connections 3.0" in scraped.splitlines()
    assert list(tmp_path.iterdir()) == []  # removed afterwards
