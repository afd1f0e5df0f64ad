"""Single use and idempotency across replicas: two `ghostpay serve charges` processes on one database.

A lock inside one Python process would pass an in-process test and fail here, so these tests fire many
concurrent charges over two real processes and check both the HTTP answers and the rows in PostgreSQL.
Cards and tokens come from the in-process app (`api`); every process shares its database, Redis and keys.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS, Api
from tests.support import procs
from tests.support.servers import Servers

pytestmark = pytest.mark.slow
SAME_CARD_REQUESTS = 64
SAME_KEY_REQUESTS = 40


@pytest.fixture(scope="module")
def replicas(
    servers: Servers, database_url: str, keys_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[procs.Proc, ...]]:
    env = procs.service_env(database_url, servers.redis_url, keys_dir, ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS)
    logs = tmp_path_factory.mktemp("replicas")
    with procs.running(procs.serve("charges", env, logs), procs.serve("charges", env, logs)) as running:
        yield running


async def _fan_out(
    replicas: tuple[procs.Proc, ...], count: int, body: dict[str, Any], headers: dict[str, str]
) -> list[httpx.Response]:
    """`count` concurrent POST /charges, alternating between the replicas."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:
        return await asyncio.gather(
            *(http.post(f"{replicas[i % len(replicas)].url}/charges", json=body, headers=headers) for i in range(count))
        )


async def test_concurrent_charges_on_one_card_approve_exactly_one(
    api: Api, replicas: tuple[procs.Proc, ...], database_url: str
) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"], amount=700, currency="USD")
    body = {"card_id": card["card_id"], "amount": 700, "currency": "USD"}

    responses = await _fan_out(replicas, SAME_CARD_REQUESTS, body, merchant["headers"])

    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1, statuses
    assert statuses.count(402) == SAME_CARD_REQUESTS - 1, [r.text for r in responses if r.status_code != 402]
    approved = next(r.json() for r in responses if r.status_code == 201)
    assert approved["status"] == "approved" and approved["card_id"] == card["card_id"]
    for declined in (r for r in responses if r.status_code == 402):
        problem = declined.json()
        assert problem["code"] == "card_declined" and problem["decline_code"] == "card_used", problem

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT charge_id, status FROM charges WHERE card_id = $1", card["card_id"])
        card_status = await conn.fetchval("SELECT status FROM cards WHERE card_id = $1", card["card_id"])
    finally:
        await conn.close()
    assert [r["charge_id"] for r in rows if r["status"] == "approved"] == [approved["charge_id"]]
    assert len(rows) == SAME_CARD_REQUESTS  # every declined attempt is recorded too
    assert card_status == "used"


async def test_concurrent_requests_with_one_idempotency_key_charge_once(
    api: Api, replicas: tuple[procs.Proc, ...], database_url: str
) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"], amount=900, currency="EUR")
    body = {"card_id": card["card_id"], "amount": 250, "currency": "EUR"}
    key = f"order-{secrets.token_hex(8)}"
    headers = {**merchant["headers"], "Idempotency-Key": key}

    responses = await _fan_out(replicas, SAME_KEY_REQUESTS, body, headers)

    created = [r for r in responses if r.status_code == 201]
    others = [r for r in responses if r.status_code != 201]
    for response in others:
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "idempotency_key_in_flight"
    originals = [r for r in created if r.headers.get("Idempotent-Replayed") != "true"]
    assert len(originals) == 1, [dict(r.headers) for r in created]
    charge_ids = {r.json()["charge_id"] for r in created}
    assert len(charge_ids) == 1
    (charge_id,) = charge_ids

    # Once the first request has finished, the key replays from either replica.
    async with httpx.AsyncClient(timeout=60.0) as http:
        replays = [await http.post(f"{replica.url}/charges", json=body, headers=headers) for replica in replicas]
    for replay in replays:
        assert replay.status_code == 201, replay.text
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert replay.json()["charge_id"] == charge_id

    conn = await asyncpg.connect(database_url)
    try:
        charges = await conn.fetch("SELECT charge_id, status FROM charges WHERE card_id = $1", card["card_id"])
        keyed = await conn.fetch(
            "SELECT charge_id FROM idempotency_keys WHERE owner_id = $1 AND key = $2", merchant["client_id"], key
        )
    finally:
        await conn.close()
    assert [(r["charge_id"], r["status"]) for r in charges] == [(charge_id, "approved")]
    assert [r["charge_id"] for r in keyed] == [charge_id]
