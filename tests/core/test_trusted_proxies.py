"""Finding 7 (outside security review), the address half: requests without a token are limited per client address,
and behind a proxy that address comes from X-Forwarded-For — but only when the peer is a trusted proxy
(`GHOSTPAY_TRUSTED_PROXIES`, default none), taking the right-most address that is not itself a trusted proxy.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghostpay.core.settings import Settings
from tests.conftest import ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS, in_process_api, make_settings
from tests.support import procs
from tests.support.servers import Servers

# Two requests, then one every 10 s: the third in a row is refused.
TIGHT_ANONYMOUS = {**GENEROUS_LIMITS, "anonymous": {"requestsPerSecond": 0.1, "burst": 2}}
PROXIES = "10.9.0.0/16, fd00:9::/64"


def some_address() -> str:
    """A client address no other test uses (documentation range 198.18.0.0/15)."""
    return f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


@pytest.fixture
def behind_proxy(database_url: str, servers: Servers, keys_dir: Path) -> Settings:
    return make_settings(
        database_url, servers.redis_url, keys_dir, rate_limits=TIGHT_ANONYMOUS, trusted_proxies=PROXIES
    )


async def _codes(http: httpx.AsyncClient, count: int, forwarded_for: str) -> list[int]:
    headers = {"x-forwarded-for": forwarded_for}
    return [(await http.get("/.well-known/jwks.json", headers=headers)).status_code for _ in range(count)]


async def test_finding_7_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    behind_proxy: Settings,
) -> None:
    async with in_process_api(behind_proxy, client_address="10.9.3.4") as api:
        first, second = some_address(), some_address()
        assert await _codes(api.http, 3, first) == [200, 200, 429]
        assert await _codes(api.http, 2, second) == [200, 200]  # not the proxy's budget, nor the first client's
        # A chain of trusted proxies: the right-most address that is not one of them is the client.
        third = some_address()
        assert await _codes(api.http, 2, f"{third}, 10.9.7.7") == [200, 200]
        assert await _codes(api.http, 1, third) == [429]
        # What a client writes into the header itself (left of what the proxy appended) does not count.
        assert await _codes(api.http, 1, f"{some_address()}, {first}") == [429]


async def test_finding_7_an_untrusted_peers_forwarded_for_is_ignored(behind_proxy: Settings) -> None:
    peer = some_address()  # not in PROXIES
    async with in_process_api(behind_proxy, client_address=peer) as api:
        codes = [(await _codes(api.http, 1, some_address()))[0] for _ in range(3)]
        assert codes == [200, 200, 429]  # one budget: the peer's


def test_finding_7_trusted_proxies_are_networks() -> None:
    settings = Settings(trusted_proxies="10.0.0.0/8, 192.168.1.7 ,fd00::/8")  # type: ignore[arg-type]
    assert [str(net) for net in settings.trusted_proxies] == ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]
    assert Settings().trusted_proxies == []
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.1/8")  # type: ignore[arg-type]  # host bits set: a typo, not a network


@pytest.mark.slow
async def test_finding_7_a_served_process_trusts_no_forwarded_for_by_default(
    servers: Servers, database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    """uvicorn alone trusts X-Forwarded-For from 127.0.0.1; `ghostpay serve` must not (nothing is configured)."""
    # A Redis database of its own: its peer is 127.0.0.1, like every in-process test client, whose budget this
    # tight policy would otherwise leave in debt.
    redis_url = servers.redis_url + ("&" if "?" in servers.redis_url else "?") + "db=7"
    env: dict[str, Any] = procs.service_env(database_url, redis_url, keys_dir, ADMIN_ID, ADMIN_SECRET, TIGHT_ANONYMOUS)
    proc = procs.serve("auth", env, tmp_path)
    await asyncio.to_thread(proc.start)
    try:
        async with httpx.AsyncClient(base_url=proc.url, timeout=10.0) as http:
            codes = [(await _codes(http, 1, some_address()))[0] for _ in range(3)]
    finally:
        proc.stop()
    assert codes == [200, 200, 429]
