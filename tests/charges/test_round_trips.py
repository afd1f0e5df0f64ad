"""The hot path's cost: a charge is one PostgreSQL statement (no reset query on release) and one Redis command."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from ghostpay.charges import service, store
from ghostpay.core import db
from ghostpay.core.settings import Settings
from tests.conftest import Api, in_process_api, make_settings


async def test_a_charge_is_one_database_statement(settings: Settings, api: Api) -> None:
    merchant = await api.merchant()
    cards = [await api.issue_card(merchant["headers"]) for _ in range(3)]
    statements: list[str] = []

    async def watch(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: statements.append(record.query))

    pool = await db.create_pool(settings, init=watch)
    try:
        for card in cards:
            attempt = store.ChargeAttempt(
                "ch_rt_" + card["card_id"],
                card["card_id"],
                merchant["client_id"],
                1,
                "USD",
                merchant["client_id"],
                None,
                service.request_fingerprint("", 1, ""),
            )
            assert (await store.charge(pool, attempt)).kind == "created"
    finally:
        await pool.close()
    assert statements == [store.CHARGE_SQL] * 3


async def _calls(client: Any) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


# Commands the GCRA script runs inside its one EVALSHA; Redis counts them too.
INSIDE_THE_SCRIPT = {"time", "get", "set"}


async def test_a_charge_request_is_one_redis_command(settings: Settings, api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    client = aioredis.from_url(settings.redis_url)
    try:
        before = await _calls(client)
        response = await api.http.post(
            "/charges", json={"card_id": card["card_id"], "amount": 1, "currency": "USD"}, headers=merchant["headers"]
        )
        after = await _calls(client)
    finally:
        await client.aclose()
    assert response.status_code == 201
    sent = {name: count - before.get(name, 0) for name, count in after.items() if count != before.get(name, 0)}
    sent.pop("info")  # our own look
    assert sent.pop("evalsha") == 1
    assert set(sent) <= INSIDE_THE_SCRIPT


async def test_a_charge_reading_the_live_rate_limit_policy_is_still_one_redis_command(
    database_url: str, servers: Any, keys_dir: Path
) -> None:
    """Issue 16: the instance's policy key is read inside the same script call that spends the budget."""
    key = f"ghostpay:ratelimits:test:{secrets.token_hex(4)}"
    settings = make_settings(database_url, servers.redis_url, keys_dir, rate_limit_policy_key=key)
    client = aioredis.from_url(settings.redis_url)
    try:
        limits = {role: {"requestsPerSecond": 1000, "burst": 1000} for role in ("admin", "merchant", "user")}
        await client.set(key, json.dumps({"generation": 1, "limits": limits}))
        async with in_process_api(settings) as api:
            merchant = await api.merchant()
            card = await api.issue_card(merchant["headers"])
            before = await _calls(client)
            response = await api.http.post(
                "/charges",
                json={"card_id": card["card_id"], "amount": 1, "currency": "USD"},
                headers=merchant["headers"],
            )
            after = await _calls(client)
    finally:
        await client.delete(key)
        await client.aclose()
    assert response.status_code == 201
    assert response.headers["RateLimit-Limit"] == "1000"  # the policy key's budget decided
    sent = {name: count - before.get(name, 0) for name, count in after.items() if count != before.get(name, 0)}
    sent.pop("info")
    assert sent.pop("evalsha") == 1
    assert set(sent) <= INSIDE_THE_SCRIPT
