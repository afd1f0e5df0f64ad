"""`ghostpay dev` as a user runs it: a real process with embedded PostgreSQL and Redis in a fresh --data-dir.

Checked from the outside: it becomes ready, shows the generated admin credentials once and keeps them in a
0600 file, stops cleanly on SIGTERM without leaving PostgreSQL or Redis behind, keeps cards and charges across
restarts, and starts again on the same directory after a SIGKILL left its PostgreSQL running.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import procs

pytestmark = pytest.mark.slow
DEV_READY_TIMEOUT = 180.0  # a first start runs initdb


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short path: the PostgreSQL and Redis Unix sockets live in it (107-byte limit).
    path = Path(tempfile.mkdtemp(prefix="gpd-", dir="/tmp"))
    yield path
    procs.kill_mentioning(str(path))  # whatever a failed test left running
    shutil.rmtree(path, ignore_errors=True)


async def _start(data_dir: Path, log_dir: Path) -> procs.Proc:
    proc = procs.dev(data_dir, log_dir)
    await asyncio.to_thread(proc.start, DEV_READY_TIMEOUT)
    return proc


def _current_run_log(proc: procs.Proc) -> str:
    return proc.logs().rsplit("--- start ", 1)[-1]


async def _token(http: httpx.AsyncClient, client_id: str, client_secret: str) -> dict[str, str]:
    response = await http.post("/auth/token", json={"client_id": client_id, "client_secret": client_secret})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _card_and_charge(proc: procs.Proc, admin: dict[str, Any]) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=proc.url, timeout=30.0) as http:
        admin_headers = await _token(http, admin["client_id"], admin["client_secret"])
        response = await http.post("/auth/clients", json={"name": "shop", "role": "merchant"}, headers=admin_headers)
        assert response.status_code == 201, response.text
        merchant = await _token(http, response.json()["client_id"], response.json()["client_secret"])
        card = await http.post(
            "/cards", json={"user_id": "user_dev", "amount": 1200, "currency": "USD"}, headers=merchant
        )
        assert card.status_code == 201, card.text
        charge = await http.post(
            "/charges", json={"card_id": card.json()["card_id"], "amount": 1200, "currency": "USD"}, headers=merchant
        )
        assert charge.status_code == 201, charge.text
        return card.json()["card_id"], charge.json()["charge_id"]


async def _assert_kept(proc: procs.Proc, admin: dict[str, Any], card_id: str, charge_id: str) -> None:
    async with httpx.AsyncClient(base_url=proc.url, timeout=30.0) as http:
        headers = await _token(http, admin["client_id"], admin["client_secret"])
        card = await http.get(f"/cards/{card_id}", headers=headers)
        assert card.status_code == 200, card.text
        assert card.json()["status"] == "used"
        charge = await http.get(f"/charges/{charge_id}", headers=headers)
        assert charge.status_code == 200, charge.text
        assert charge.json()["status"] == "approved" and charge.json()["card_id"] == card_id


def _assert_embedded_servers_running(data_dir: Path) -> None:
    assert procs.pids_mentioning(str(data_dir / "postgres")), "no embedded PostgreSQL for this data dir"
    assert procs.pids_mentioning(str(data_dir / "redis")), "no embedded Redis for this data dir"


async def test_fresh_start_credentials_clean_stop_and_restart(data_dir: Path, tmp_path: Path) -> None:
    proc = await _start(data_dir, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=proc.url, timeout=10.0) as http:
            assert (await http.get("/readyz")).status_code == 200
        creds_file = data_dir / "admin-credentials.json"
        assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
        admin = json.loads(creds_file.read_text())
        assert admin["client_id"] in proc.logs()
        assert proc.logs().count(admin["client_secret"]) == 1  # shown once, on stderr
        card_id, charge_id = await _card_and_charge(proc, admin)
        _assert_embedded_servers_running(data_dir)
    finally:
        exit_code = proc.stop()
    assert exit_code == 0, proc.logs()[-3000:]
    assert procs.wait_gone(str(data_dir / "postgres")) == [], "PostgreSQL outlived ghostpay dev"
    assert procs.wait_gone(str(data_dir / "redis")) == [], "Redis outlived ghostpay dev"

    again = await _start(data_dir, tmp_path)
    try:
        assert admin["client_secret"] not in _current_run_log(again)  # not printed a second time
        assert json.loads(creds_file.read_text()) == admin
        await _assert_kept(again, admin, card_id, charge_id)
    finally:
        assert again.stop() == 0, again.logs()[-3000:]
    assert procs.wait_gone(str(data_dir)) == []


async def test_restart_after_sigkill_reuses_the_running_postgres(data_dir: Path, tmp_path: Path) -> None:
    proc = await _start(data_dir, tmp_path)
    admin = json.loads((data_dir / "admin-credentials.json").read_text())
    card_id, charge_id = await _card_and_charge(proc, admin)
    proc.kill()
    # No clean-up ran: PostgreSQL is still up; Redis died with its parent (parent-death signal).
    assert procs.pids_mentioning(str(data_dir / "postgres")), "expected the killed dev's PostgreSQL to survive"
    assert procs.wait_gone(str(data_dir / "redis")) == [], "Redis outlived a SIGKILLed ghostpay dev"

    again = await _start(data_dir, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=again.url, timeout=10.0) as http:
            assert (await http.get("/readyz")).status_code == 200
        await _assert_kept(again, admin, card_id, charge_id)
        _assert_embedded_servers_running(data_dir)
    finally:
        exit_code = again.stop()
    assert exit_code == 0, again.logs()[-3000:]
    assert procs.wait_gone(str(data_dir)) == [], "a process of this data dir outlived ghostpay dev"
