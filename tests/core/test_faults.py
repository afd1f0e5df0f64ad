"""The test-only fault switch (`ghostpay.core.faults`): refused in production, and each fault does what it says
on real PostgreSQL and Redis (the crash on a real `ghostpay serve` process)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pydantic
import pytest
from prometheus_client import REGISTRY

from ghostpay.core import faults
from ghostpay.core.settings import Settings
from tests.conftest import ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS, Api, in_process_api
from tests.support import procs
from tests.support.servers import Servers


def test_a_fault_is_refused_in_production(settings: Settings) -> None:
    values = settings.model_dump()
    with pytest.raises(pydantic.ValidationError, match="test-only fault switch"):
        Settings(**{**values, "environment": "production", "fault": "decline-charges"})
    assert Settings(**{**values, "environment": "development", "fault": "decline-charges"}).fault == "decline-charges"
    assert Settings(**{**values, "environment": "production"}).fault == "none"


def _with_fault(settings: Settings, fault: str) -> Settings:
    return settings.model_copy(update={"environment": "development", "fault": fault})


async def _charge(api: Api, merchant: dict[str, object], card_id: str) -> httpx.Response:
    body = {"card_id": card_id, "amount": 100, "currency": "USD"}
    return await api.http.post("/charges", json=body, headers=merchant["headers"])  # type: ignore[arg-type]


def _declines() -> float:
    labels = {"status": "declined", "decline_code": faults.DECLINE_CODE}
    value = REGISTRY.get_sample_value("ghostpay_charges_total", labels)
    return value or 0.0


@pytest.mark.parametrize(
    ("fault", "status", "code"), [("charges-5xx", 500, "fault_injected"), ("decline-charges", 402, "card_declined")]
)
async def test_a_charge_fault_answers_without_touching_the_card(
    settings: Settings, api: Api, fault: str, status: int, code: str
) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    declines_before = _declines()
    async with in_process_api(_with_fault(settings, fault)) as broken:
        response = await _charge(broken, merchant, card["card_id"])
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert _declines() - declines_before == (1 if fault == "decline-charges" else 0)
    healthy = await _charge(api, merchant, card["card_id"])  # the card was never charged: it still approves
    assert healthy.status_code == 201, healthy.text


async def test_never_ready_keeps_readyz_at_503(settings: Settings) -> None:
    async with in_process_api(_with_fault(settings, "never-ready")) as broken:
        response = await broken.http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["fault"].startswith("never-ready")


async def test_crash_after_start_serves_then_exits(
    servers: Servers, database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    env = procs.service_env(database_url, servers.redis_url, keys_dir, ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS)
    env |= {"GHOSTPAY_ENVIRONMENT": "development", "GHOSTPAY_FAULT": "crash-after-start"}
    env["GHOSTPAY_FAULT_DELAY_SECONDS"] = "3"
    proc = procs.serve("charges", env, tmp_path)
    await asyncio.to_thread(proc.start)  # Ready first, like a release's pods
    assert proc.process is not None
    deadline = time.monotonic() + 60
    while proc.process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    proc.stop()
    assert proc.process.returncode == faults.CRASH_STATUS, proc.logs()
