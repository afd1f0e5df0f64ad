"""The KeyCache a service holds: refreshed from a real local key store, kept when the backend fails, and
refreshed for unknown kids at most once per `min_refresh_interval`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ghostpay.core import telemetry
from ghostpay.core.keys import cache as cache_module
from ghostpay.core.keys import ring
from ghostpay.core.keys.cache import KeyCache
from ghostpay.core.keys.local import LocalKeyStore

PASSPHRASE = "cache tests"
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


class Backend(LocalKeyStore):
    """A real local store that counts public_keys() calls, and can be made to fail, publish nothing, or block
    until released (a slow backend)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, PASSPHRASE)
        self.calls = 0
        self.down = False
        self.publish_nothing = False
        self.entered = threading.Event()
        self.release: threading.Event | None = None

    def public_keys(self) -> list[ring.PublicKey]:
        self.calls += 1
        self.entered.set()
        if self.release is not None and not self.release.wait(timeout=30):
            raise TimeoutError("the test never released the backend")
        if self.down:
            raise ConnectionError("key backend unreachable")
        if self.publish_nothing:
            return []
        return super().public_keys()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The cache's monotonic clock, moved by hand (only the cache module's `time` is replaced)."""
    fake = Clock()
    monkeypatch.setattr(cache_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def open_backend(directory: Path) -> Backend:
    backend = Backend(directory)
    backend.open()
    backend.calls = 0
    return backend


def kids(keys: list[ring.PublicKey]) -> list[str]:
    return [k.kid for k in keys]


async def refreshed_cache(backend: Backend, min_refresh_interval: float = 60, activation_delay: float = 0) -> KeyCache:
    cache = KeyCache(
        backend, refresh_interval=30, min_refresh_interval=min_refresh_interval, activation_delay=activation_delay
    )
    assert await cache.refresh() is True
    return cache


# --- refreshing ----------------------------------------------------------------------------------------------
async def test_a_refresh_loads_the_published_keys(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "keys")
    cache = KeyCache(backend, refresh_interval=30, min_refresh_interval=60, activation_delay=0)
    assert cache.published() == [] and cache.get(kids(backend.public_keys())[0]) is None
    assert await cache.refresh() is True
    [key] = cache.published()
    assert cache.get(key.kid) == key and key.kid == kids(backend.public_keys())[0]


async def test_a_failed_refresh_keeps_the_last_good_keys(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "keys")
    cache = await refreshed_cache(backend)
    before = cache.published()
    failures = telemetry.KEY_REFRESH_FAILURES._value.get()
    backend.down = True
    assert await cache.refresh() is False
    assert telemetry.KEY_REFRESH_FAILURES._value.get() == failures + 1
    assert cache.published() == before and cache.get(before[0].kid) == before[0]
    assert cache.signing_key() == before[0]
    backend.down = False
    assert await cache.refresh() is True
    assert telemetry.KEY_REFRESH_FAILURES._value.get() == failures + 1


async def test_a_backend_publishing_nothing_does_not_empty_the_cache(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "keys")
    cache = await refreshed_cache(backend)
    before = cache.published()
    backend.publish_nothing = True
    assert await cache.refresh() is False
    assert cache.published() == before and len(before) == 1
    assert cache.jwks()["keys"] == [before[0].jwk()]


async def test_a_refresh_sees_a_rotation_by_the_backend(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "keys")
    cache = await refreshed_cache(backend)
    seen = telemetry.KEY_VERSIONS_PUBLISHED._value.get()
    backend.rotate(grace=DAY, activation_delay=HOUR)
    assert await cache.refresh() is True
    assert [k.version for k in cache.published()] == [1, 2]
    assert telemetry.KEY_VERSIONS_PUBLISHED._value.get() == seen + 1


async def test_a_refresh_sees_a_rotation_made_by_another_process(tmp_path: Path) -> None:
    """`ghostpay keys rotate` (or the operator's CronJob rewriting the mounted Secret) rotates the store from
    another process: a running service must pick the new version up on its next refresh."""
    backend = open_backend(tmp_path / "keys")
    cache = await refreshed_cache(backend)
    rotator = LocalKeyStore(tmp_path / "keys", PASSPHRASE).open()
    rotator.rotate(grace=DAY, activation_delay=HOUR)
    assert await cache.refresh() is True
    assert kids(cache.published()) == kids(rotator.public_keys()) and len(cache.published()) == 2


# --- refreshing for an unknown kid ---------------------------------------------------------------------------
async def test_unknown_kids_refresh_at_most_once_per_min_refresh_interval(tmp_path: Path, clock: Clock) -> None:
    backend = open_backend(tmp_path / "keys")
    cache = await refreshed_cache(backend, min_refresh_interval=60)
    assert backend.calls == 1
    for n in range(20):  # within the interval of the startup refresh
        assert await cache.refresh_for_unknown_kid(f"bogus-{n}") is None
    assert backend.calls == 1

    clock.now += 60
    for n in range(20):
        assert await cache.refresh_for_unknown_kid(f"bogus-{n}") is None
        clock.now += 1  # all within 60 s of the one refresh they triggered
    assert backend.calls == 2

    clock.now += 39  # 59 s after that refresh
    assert await cache.refresh_for_unknown_kid("bogus-again") is None
    assert backend.calls == 2
    clock.now += 1  # 60 s after it
    assert await cache.refresh_for_unknown_kid("bogus-again") is None
    assert backend.calls == 3


async def test_a_failed_attempt_also_counts_for_the_rate_limit(tmp_path: Path, clock: Clock) -> None:
    backend = open_backend(tmp_path / "keys")
    cache = await refreshed_cache(backend, min_refresh_interval=60)
    clock.now += 60
    backend.down = True
    assert await cache.refresh_for_unknown_kid("bogus-1") is None
    assert await cache.refresh_for_unknown_kid("bogus-2") is None
    assert backend.calls == 2


async def test_an_unknown_kid_is_found_after_the_refresh_it_triggers(tmp_path: Path, clock: Clock) -> None:
    backend = open_backend(tmp_path / "keys")
    cache = await refreshed_cache(backend, min_refresh_interval=60)
    backend.rotate(grace=DAY, activation_delay=HOUR)
    new_kid = kids(backend.public_keys())[1]
    backend.calls = 0
    assert cache.get(new_kid) is None
    assert await cache.refresh_for_unknown_kid(new_kid) is None  # too soon after the last refresh
    assert backend.calls == 0
    clock.now += 60
    found = await cache.refresh_for_unknown_kid(new_kid)
    assert found is not None and found.kid == new_kid and found.version == 2
    assert backend.calls == 1


async def test_unknown_kids_arriving_during_a_refresh_wait_for_it_instead_of_starting_another(
    tmp_path: Path,
) -> None:
    backend = open_backend(tmp_path / "keys")
    cache = await refreshed_cache(backend, min_refresh_interval=0)  # no rate limit: only the lock prevents it
    backend.rotate(grace=DAY, activation_delay=HOUR)
    new_kid = kids(backend.public_keys())[-1]
    backend.calls = 0
    backend.entered.clear()
    backend.release = threading.Event()
    running = asyncio.create_task(cache.refresh())
    try:
        for _ in range(3000):  # bounded: the refresh reaches the backend (in a worker thread)
            if backend.entered.is_set():
                break
            await asyncio.sleep(0.01)
        assert backend.entered.is_set()
        waiting = [asyncio.create_task(cache.refresh_for_unknown_kid(kid)) for kid in [new_kid, "bogus-1", "bogus-2"]]
        for _ in range(10):
            await asyncio.sleep(0)
        assert not any(task.done() for task in waiting)
    finally:
        backend.release.set()
    assert await running is True
    found, *bogus = await asyncio.wait_for(asyncio.gather(*waiting), timeout=30)
    assert found is not None and found.kid == new_kid and bogus == [None, None]
    assert backend.calls == 1


# --- listeners -------------------------------------------------------------------------------------------------
async def test_listeners_run_after_each_periodic_refresh_and_a_failing_one_breaks_nothing(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "keys")
    cache = KeyCache(backend, refresh_interval=0.05, min_refresh_interval=0.01, activation_delay=0)
    ran: list[tuple[str, int]] = []

    async def failing() -> None:
        ran.append(("failing", len(cache.published())))
        raise RuntimeError("rewrap failed")

    async def counting() -> None:
        ran.append(("counting", len(cache.published())))

    cache.on_refresh(failing)
    cache.on_refresh(counting)
    assert await cache.refresh() is True
    assert await cache.refresh_for_unknown_kid("no-such-kid") is None
    assert ran == []  # neither a direct refresh nor an unknown kid runs them: only the periodic loop

    backend.rotate(grace=DAY, activation_delay=HOUR)
    loop = asyncio.create_task(cache.run())
    try:
        for _ in range(100):  # bounded: a few loop periods
            if len(ran) >= 2:
                break
            await asyncio.sleep(0.02)
        assert ran[:2] == [("failing", 2), ("counting", 2)]  # after the keys were loaded, in order, both ran

        backend.down = True
        await asyncio.sleep(0.2)  # several periods, every refresh failing
        seen = len(ran)
        await asyncio.sleep(0.2)
        assert len(ran) == seen  # not after a failed refresh
        assert not loop.done()  # a failing listener or refresh does not stop the loop
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


# --- what verifiers and the signer read ------------------------------------------------------------------------
async def test_the_jwks_lists_every_published_key(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "keys")
    backend.rotate(grace=DAY, activation_delay=HOUR)
    backend.rotate(grace=DAY, activation_delay=HOUR)
    cache = await refreshed_cache(backend)
    jwks = cache.jwks()
    published = backend.public_keys()
    assert [jwk["kid"] for jwk in jwks["keys"]] == kids(published) and len(published) == 3
    for jwk, key in zip(jwks["keys"], published, strict=True):
        assert jwk["alg"] == "RS256" and jwk["use"] == "sig" and jwk["kty"] == "RSA"
        rebuilt = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
        assert isinstance(rebuilt, rsa.RSAPublicKey)
        assert rebuilt.public_numbers() == key.public_key.public_numbers()


async def test_the_signing_key_respects_the_activation_delay(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "keys")
    backend.rotate(grace=DAY, activation_delay=HOUR)  # version 2 published now
    first, second = backend.public_keys()
    patient = await refreshed_cache(backend, activation_delay=3600)
    eager = await refreshed_cache(backend, activation_delay=0)
    assert patient.signing_key() == first
    assert eager.signing_key() == second
    assert kids(patient.published()) == kids(eager.published()) == [first.kid, second.kid]


async def test_no_signing_key_before_the_first_refresh(tmp_path: Path) -> None:
    cache = KeyCache(open_backend(tmp_path / "keys"), refresh_interval=30, min_refresh_interval=60, activation_delay=0)
    with pytest.raises(ring.KeysUnavailable):
        cache.signing_key()
    assert cache.jwks() == {"keys": []}


# --- key age (ghostpay_signing_key_age_seconds, the GhostPaySigningKeyTooOld alert's input) -------------------
async def test_the_signing_keys_age_is_counted_from_its_creation(tmp_path: Path) -> None:
    class DayOld(Backend):
        def public_keys(self) -> list[ring.PublicKey]:
            return [dataclasses.replace(key, created_at=key.created_at - DAY) for key in super().public_keys()]

    backend = DayOld(tmp_path / "keys")
    backend.open()
    cache = KeyCache(backend, refresh_interval=30, min_refresh_interval=60, activation_delay=0)
    assert math.isnan(cache.signing_key_age_seconds())  # nothing published yet
    assert await cache.refresh() is True
    assert DAY.total_seconds() <= cache.signing_key_age_seconds() < (DAY + HOUR).total_seconds()
