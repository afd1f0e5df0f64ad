"""Finding 7 (outside security review), the login half: failed logins are limited per attempted client_id, so an
attacker hammering one client's id — from one address or many, behind an Ingress or not — cannot lock any other
client out, and a client's own correct login is refused only while its own failures are used up.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx
import pytest

from ghostpay.core.settings import Settings
from tests.conftest import GENEROUS_LIMITS, in_process_api, make_settings
from tests.support.servers import Servers

INGRESS = "10.42.0.7"  # every request reaches the app from the Ingress controller's pod
JUNK_LOGINS = 45
SHIPPED_FAILURE_BURST = 10  # the default GHOSTPAY_LOGIN_FAILURE_LIMIT: 10 failures, then one every 5 s


def some_address() -> str:
    return f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


@pytest.fixture
def behind_ingress(database_url: str, servers: Servers, keys_dir: Path) -> Settings:
    """The shipped anonymous burst (40) refilling slowly, so that a burst of junk keeps it empty; the shipped
    login-failure limit; a trusted Ingress."""
    limits = {**GENEROUS_LIMITS, "anonymous": {"requestsPerSecond": 0.5, "burst": 40}}
    return make_settings(database_url, servers.redis_url, keys_dir, rate_limits=limits, trusted_proxies=INGRESS)


async def _login(http: httpx.AsyncClient, client_id: str, secret: str, address: str) -> httpx.Response:
    return await http.post(
        "/auth/token",
        json={"client_id": client_id, "client_secret": secret},
        headers={"x-forwarded-for": address},
    )


async def test_finding_7_junk_logins_against_one_client_do_not_lock_out_another(behind_ingress: Settings) -> None:
    async with in_process_api(behind_ingress, client_address=INGRESS) as api:
        victim, bystander = await api.merchant(), await api.merchant()
        junk = [await _login(api.http, victim["client_id"], "wrong-secret", some_address()) for _ in range(JUNK_LOGINS)]
        codes = [r.status_code for r in junk]
        assert codes[:SHIPPED_FAILURE_BURST] == [401] * SHIPPED_FAILURE_BURST
        assert codes[-1] == 429  # the victim's failures are used up (a refill or two may have come between)
        refused = junk[-1]
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1

        login = await _login(api.http, bystander["client_id"], bystander["client_secret"], some_address())
        assert login.status_code == 200, login.text
        # The victim itself is refused — before its secret is checked — until its failures refill.
        own = await _login(api.http, victim["client_id"], victim["client_secret"], some_address())
        assert own.status_code == 429 and "Retry-After" in own.headers


async def test_finding_7_correct_logins_spend_no_failures(database_url: str, servers: Servers, keys_dir: Path) -> None:
    settings = make_settings(
        database_url,
        servers.redis_url,
        keys_dir,
        login_failure_limit={"requestsPerSecond": 0.01, "burst": 2},
    )
    async with in_process_api(settings) as api:
        client = await api.merchant()
        for _ in range(4):
            assert (await _login(api.http, client["client_id"], client["client_secret"], "")).status_code == 200
        codes = [(await _login(api.http, client["client_id"], "wrong", "")).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        # An unknown id is counted like a known one, so a 429 does not tell whether the id exists.
        unknown = f"cli_{secrets.token_hex(8)}"
        assert [(await _login(api.http, unknown, "x", "")).status_code for _ in range(3)] == [401, 401, 429]


async def test_finding_7_concurrent_guesses_get_no_more_than_the_budget(
    database_url: str, servers: Servers, keys_dir: Path
) -> None:
    settings = make_settings(
        database_url, servers.redis_url, keys_dir, login_failure_limit={"requestsPerSecond": 0.01, "burst": 5}
    )
    async with in_process_api(settings) as api:
        client = await api.merchant()
        guesses = await asyncio.gather(*(_login(api.http, client["client_id"], "guess", "") for _ in range(30)))
        codes = sorted(r.status_code for r in guesses)
        assert codes == [401] * 5 + [429] * 25  # each attempt spends before its secret is checked
