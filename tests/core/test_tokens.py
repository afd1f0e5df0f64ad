"""The verifier's cache of verified tokens never outlives the token's expiry or its signing key; the clock-skew
leeway on iat/nbf (finding 9b)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from ghostpay.core.errors import Unauthorized
from ghostpay.core.keys.cache import KeyCache
from ghostpay.core.keys.local import LocalKeyStore
from ghostpay.core.tokens import Principal, TokenVerifier, claims_for, issue_token

MERCHANT = Principal("cli_m", "merchant", merchant_id="cli_m")


async def open_cache(directory: Path) -> KeyCache:
    cache = KeyCache(LocalKeyStore(directory, "pass").open(), 30, 0, activation_delay=0)
    assert await cache.refresh()
    return cache


async def token(cache: KeyCache, ttl: int = 600) -> str:
    return await issue_token(cache, claims_for(MERCHANT, "ghostpay", "ghostpay", ttl))


async def test_a_cached_token_expires_on_time(tmp_path: Path) -> None:
    cache = await open_cache(tmp_path)
    verifier = TokenVerifier(cache, "ghostpay", "ghostpay")
    short_lived = await token(cache, ttl=1)
    assert await verifier.verify(short_lived) == MERCHANT
    assert await verifier.verify(short_lived) == MERCHANT  # from the cache
    await asyncio.sleep(1.1)
    with pytest.raises(Unauthorized):
        await verifier.verify(short_lived)


async def test_a_cached_token_dies_with_its_key(tmp_path: Path) -> None:
    cache = await open_cache(tmp_path)
    verifier = TokenVerifier(cache, "ghostpay", "ghostpay")
    issued = await token(cache)
    assert await verifier.verify(issued) == MERCHANT
    store = cache.backend
    assert isinstance(store, LocalKeyStore)
    store.rotate(grace=timedelta(0), activation_delay=timedelta(0))
    store.rotate(grace=timedelta(0), activation_delay=timedelta(0))  # retires the first version
    assert await cache.refresh()
    with pytest.raises(Unauthorized):
        await verifier.verify(issued)


async def test_the_cache_is_bounded(tmp_path: Path) -> None:
    cache = await open_cache(tmp_path)
    verifier = TokenVerifier(cache, "ghostpay", "ghostpay")
    verifier.CACHE_SIZE = 3
    tokens = [await token(cache) for _ in range(5)]
    for issued in tokens:
        await verifier.verify(issued)
    assert len(verifier._verified) == 3 and tokens[-1] in verifier._verified


@pytest.mark.parametrize(
    ("claim", "ahead_seconds", "accepted"),
    [
        pytest.param("iat", 2, True, id="iat 2 s ahead (the issuer's clock is a little fast): accepted"),
        pytest.param("nbf", 2, True, id="nbf 2 s ahead: accepted"),
        pytest.param("iat", 300, False, id="iat 5 min ahead: refused"),
        pytest.param("nbf", 300, False, id="nbf 5 min ahead: refused"),
    ],
)
async def test_finding_9b_clock_skew_leeway_on_iat_and_nbf(
    tmp_path: Path, claim: str, ahead_seconds: int, accepted: bool
) -> None:
    cache = await open_cache(tmp_path)
    verifier = TokenVerifier(cache, "ghostpay", "ghostpay", leeway_seconds=30)
    claims = claims_for(MERCHANT, "ghostpay", "ghostpay", 600)
    claims[claim] = int(time.time()) + ahead_seconds
    issued = await issue_token(cache, claims)
    if accepted:
        assert await verifier.verify(issued) == MERCHANT
    else:
        with pytest.raises(Unauthorized, match="not valid"):
            await verifier.verify(issued)


async def test_finding_9b_exp_gets_no_leeway(tmp_path: Path) -> None:
    """The leeway is for iat/nbf only: a token 2 s past its exp is refused (revocation markers rely on exp)."""
    cache = await open_cache(tmp_path)
    verifier = TokenVerifier(cache, "ghostpay", "ghostpay", leeway_seconds=30)
    claims = claims_for(MERCHANT, "ghostpay", "ghostpay", 600)
    claims["iat"], claims["exp"] = int(time.time()) - 60, int(time.time()) - 2
    with pytest.raises(Unauthorized, match="expired"):
        await verifier.verify(await issue_token(cache, claims))
