"""Finding 8: an admin can disable a client (`DELETE /auth/clients/{id}`) and rotate its secret
(`POST /auth/clients/{id}/secret`), as contract §2 says.

Disabling refuses the client's tokens everywhere within 5 s (through the Redis marker the rate limiter's script
reads in its one round trip) and its secret at once; PostgreSQL keeps the record, so a marker lost with Redis comes
back. Rotating stops the old secret at once and leaves issued tokens valid.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import redis.asyncio as aioredis

from ghostpay.auth import service
from ghostpay.core.revocation import marker_key
from ghostpay.core.settings import Settings
from tests.conftest import Api

POLL_INTERVAL = 0.1
DISABLE_DEADLINE = 5.0  # the contract's bound
RESEED_DEADLINE = service.RESEED_INTERVAL_SECONDS + 5.0


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers.get("www-authenticate", "").startswith("Bearer")
    assert response.json()["code"] == "unauthorized"


async def login(api: Api, client_id: str, secret: str) -> httpx.Response:
    return await api.http.post("/auth/token", json={"client_id": client_id, "client_secret": secret})


async def until_refused(api: Api, headers: dict[str, str], deadline: float) -> tuple[httpx.Response, float]:
    """Poll GET /cards with `headers` (bounded by `deadline` seconds) until it is not 200; (answer, seconds)."""
    started = time.monotonic()
    response = await api.http.get("/cards", headers=headers)
    for _ in range(int(deadline / POLL_INTERVAL)):
        if response.status_code != 200:
            break
        await asyncio.sleep(POLL_INTERVAL)
        response = await api.http.get("/cards", headers=headers)
    return response, time.monotonic() - started


async def test_finding_8_a_disabled_client_loses_its_tokens_and_its_secret(api: Api) -> None:
    admin = await api.admin()
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    assert (await api.http.get("/cards", headers=merchant["headers"])).status_code == 200

    disabled = await api.http.delete(f"/auth/clients/{merchant['client_id']}", headers=admin)

    assert disabled.status_code == 204 and disabled.content == b""
    refused, seconds = await until_refused(api, merchant["headers"], DISABLE_DEADLINE)
    print(f"\na disabled client's token was refused {seconds:.2f} s after DELETE returned")
    assert_unauthorized(refused)
    assert "disabled" in refused.json()["detail"]
    charge = await api.http.post(
        "/charges", json={"card_id": card["card_id"], "amount": 1, "currency": "USD"}, headers=merchant["headers"]
    )
    assert_unauthorized(charge)
    assert_unauthorized(await login(api, merchant["client_id"], merchant["client_secret"]))
    # Disabling again is a no-op; the client cannot get a new secret either.
    assert (await api.http.delete(f"/auth/clients/{merchant['client_id']}", headers=admin)).status_code == 204
    rotated = await api.http.post(f"/auth/clients/{merchant['client_id']}/secret", headers=admin)
    assert rotated.status_code == 404, rotated.text


async def test_finding_8_a_disable_outlives_a_redis_that_lost_its_marker(api: Api, settings: Settings) -> None:
    """PostgreSQL is the record: the auth service writes the marker again within its re-seed interval."""
    admin = await api.admin()
    merchant = await api.merchant()
    assert (await api.http.delete(f"/auth/clients/{merchant['client_id']}", headers=admin)).status_code == 204
    redis = aioredis.from_url(settings.redis_url)
    try:
        assert await redis.ttl(marker_key(merchant["client_id"])) > settings.token_ttl_seconds  # outlives the tokens
        assert await redis.delete(marker_key(merchant["client_id"])) == 1  # as after a restart without persistence
        refused, seconds = await until_refused(api, merchant["headers"], RESEED_DEADLINE)
        assert await redis.exists(marker_key(merchant["client_id"]))
    finally:
        await redis.aclose()
    print(f"\nthe revocation marker was back {seconds:.2f} s after it was deleted from Redis")
    assert_unauthorized(refused)


async def test_finding_8_rotating_a_secret_stops_the_old_one_at_once_and_keeps_tokens(api: Api) -> None:
    admin = await api.admin()
    merchant = await api.merchant()

    rotated = await api.http.post(f"/auth/clients/{merchant['client_id']}/secret", headers=admin)

    assert rotated.status_code == 201, rotated.text
    body: dict[str, Any] = rotated.json()
    assert set(body) == {"client_id", "client_secret"} and body["client_id"] == merchant["client_id"]
    assert body["client_secret"] != merchant["client_secret"] and len(body["client_secret"]) >= 32
    assert_unauthorized(await login(api, merchant["client_id"], merchant["client_secret"]))
    fresh = await login(api, merchant["client_id"], body["client_secret"])
    assert fresh.status_code == 200, fresh.text
    assert (await api.http.get("/cards", headers=merchant["headers"])).status_code == 200  # the old token
    new_headers = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert (await api.http.get("/cards", headers=new_headers)).status_code == 200


async def test_finding_8_unknown_clients_are_404(api: Api) -> None:
    admin = await api.admin()
    unknown = f"cli_{secrets.token_hex(8)}"
    for method, path in (("DELETE", f"/auth/clients/{unknown}"), ("POST", f"/auth/clients/{unknown}/secret")):
        response = await api.http.request(method, path, headers=admin)
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "not_found"


async def test_finding_8_only_an_admin_may_disable_or_rotate(api: Api) -> None:
    victim = await api.merchant()
    for caller in (await api.merchant(), await api.user()):
        for method, path in (
            ("DELETE", f"/auth/clients/{victim['client_id']}"),
            ("POST", f"/auth/clients/{victim['client_id']}/secret"),
        ):
            response = await api.http.request(method, path, headers=caller["headers"])
            assert response.status_code == 403, response.text
            assert response.json()["code"] == "forbidden"
    assert (await api.http.get("/cards", headers=victim["headers"])).status_code == 200
    assert (await login(api, victim["client_id"], victim["client_secret"])).status_code == 200
