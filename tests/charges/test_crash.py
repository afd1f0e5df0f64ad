"""A charges replica killed with SIGKILL mid-stream loses nothing and double-charges nothing.

Charges run against a real `ghostpay serve charges` process; in the middle of the stream it is SIGKILLed
(requests in flight get no answer) and restarted on the same port, and the stream goes on. Afterwards:
every approval the client saw is in the database, no card has two approvals, and once the outbox is drained
the analytics counters equal what the charges and cards tables say (no event lost, none applied twice).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from ghostpay.analytics.service import relay_once
from ghostpay.core.runtime import open_runtime
from ghostpay.core.settings import Settings
from tests.conftest import ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS, Api
from tests.support import procs
from tests.support.servers import Servers

pytestmark = pytest.mark.slow
CARDS = 60
WORKERS = 4
DRAIN_TIMEOUT = 30.0


def _jobs(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One charge per card, some over the card's limit, then a second charge on every fifth card."""
    first = [
        {"card_id": c["card_id"], "currency": c["currency"], "amount": 1500 if i % 9 == 0 else 100 + i}
        for i, c in enumerate(cards)
    ]
    again = [{**job, "amount": 50} for job in first[::5]]
    return first + again


async def _stream(
    proc: procs.Proc,
    jobs: list[dict[str, Any]],
    headers: dict[str, str],
    up: asyncio.Event,
    outcomes: list[tuple[dict[str, Any], httpx.Response | None]],
) -> None:
    """Workers charge `jobs` in order; a request the crash cut off is recorded with no response."""
    queue = list(reversed(jobs))
    async with httpx.AsyncClient(timeout=30.0) as http:

        async def worker() -> None:
            while queue:
                job = queue.pop()
                await asyncio.wait_for(up.wait(), procs.READY_TIMEOUT * 2)
                try:
                    outcomes.append((job, await http.post(f"{proc.url}/charges", json=job, headers=headers)))
                except httpx.TransportError:
                    outcomes.append((job, None))
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(worker() for _ in range(WORKERS)))


async def _expected_counters(conn: asyncpg.Connection, merchant_id: str) -> dict[tuple[str, str], int]:
    expected = {
        ("cards_issued", ""): await conn.fetchval("SELECT count(*) FROM cards WHERE merchant_id = $1", merchant_id)
    }
    for row in await conn.fetch(
        """SELECT status, decline_code, currency, count(*) AS n, sum(amount) AS volume
           FROM charges WHERE merchant_id = $1 GROUP BY 1, 2, 3""",
        merchant_id,
    ):
        key = ("charges", row["status"])
        expected[key] = expected.get(key, 0) + row["n"]
        if row["status"] == "approved":
            expected[("volume", row["currency"])] = expected.get(("volume", row["currency"]), 0) + row["volume"]
        else:
            code = ("decline_reasons", row["decline_code"])
            expected[code] = expected.get(code, 0) + row["n"]
    return expected


async def _counters(conn: asyncpg.Connection, merchant_id: str) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        "SELECT metric, dimension, value FROM analytics_counters WHERE merchant_id = $1", merchant_id
    )
    return {(r["metric"], r["dimension"]): r["value"] for r in rows if r["value"]}


async def test_sigkill_mid_stream_keeps_approvals_and_analytics_exact(
    api: Api, servers: Servers, database_url: str, keys_dir: Path, settings: Settings, tmp_path: Path
) -> None:
    merchant = await api.merchant()
    cards = [
        await api.issue_card(merchant["headers"], amount=1000, currency="USD" if i % 2 else "EUR") for i in range(CARDS)
    ]
    jobs = _jobs(cards)
    env = procs.service_env(database_url, servers.redis_url, keys_dir, ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS)
    proc = procs.serve("charges", env, tmp_path)
    await asyncio.to_thread(proc.start)
    up = asyncio.Event()
    up.set()
    outcomes: list[tuple[dict[str, Any], httpx.Response | None]] = []
    try:
        stream = asyncio.create_task(_stream(proc, jobs, merchant["headers"], up, outcomes))
        deadline = time.monotonic() + 120
        while len(outcomes) < len(jobs) // 3 and not stream.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        up.clear()
        proc.kill()
        answered_before_crash = len(outcomes)
        await asyncio.to_thread(proc.start)
        up.set()
        await asyncio.wait_for(stream, 300)
    finally:
        proc.stop()

    assert len(outcomes) == len(jobs)
    assert answered_before_crash < len(jobs), "the crash came after the stream had finished"
    answered_after_restart = [r for _, r in outcomes[answered_before_crash:] if r is not None]
    assert answered_after_restart, "no charge was answered after the restart"
    for job, response in outcomes:
        assert response is None or response.status_code in (201, 402), (job, response.text)
    seen_approved = {r.json()["charge_id"] for _, r in outcomes if r is not None and r.status_code == 201}
    assert seen_approved

    conn = await asyncpg.connect(database_url)
    try:
        approved = await conn.fetch(
            "SELECT charge_id, card_id FROM charges WHERE merchant_id = $1 AND status = 'approved'",
            merchant["client_id"],
        )
        assert seen_approved <= {r["charge_id"] for r in approved}
        per_card = Counter(r["card_id"] for r in approved)
        assert max(per_card.values()) == 1, per_card.most_common(3)
        # A card is `used` exactly when it has an approval, even for the requests the crash cut off.
        inconsistent = await conn.fetch(
            """SELECT card_id FROM cards c WHERE merchant_id = $1 AND (status = 'used') <> EXISTS (
                   SELECT 1 FROM charges h WHERE h.card_id = c.card_id AND h.status = 'approved')""",
            merchant["client_id"],
        )
        assert inconsistent == []

        runtime = await open_runtime(settings, "analytics")
        try:
            await relay_once(runtime)
        finally:
            await runtime.close()
        # The in-process app relays too; wait (bounded) until its last batch has been committed.
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while await conn.fetchval("SELECT count(*) FROM outbox") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        expected = await _expected_counters(conn, merchant["client_id"])
        assert await _counters(conn, merchant["client_id"]) == expected
    finally:
        await conn.close()
    assert expected[("cards_issued", "")] == CARDS
    assert expected[("decline_reasons", "amount_exceeds_limit")] >= 1
    assert expected[("decline_reasons", "card_used")] >= 1
