"""What a running service holds of the keys: the published versions, refreshed in the background.

Verifiers look keys up here, never in the backend, so verification keeps working while Vault (or the key
store) is unreachable: a failed refresh keeps the last good copy. A token with an unknown `kid` triggers a
refresh, at most once per `min_refresh_interval`, so a flood of bogus kids cannot hammer the backend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio.to_thread

from ghostpay.core import telemetry
from ghostpay.core.keys import KeyBackend, ring

T = TypeVar("T")
log = logging.getLogger("ghostpay.keys")


class KeyCache:
    def __init__(
        self,
        backend: KeyBackend,
        refresh_interval: float,
        min_refresh_interval: float,
        activation_delay: float,
    ) -> None:
        self.backend = backend
        self._refresh_interval = refresh_interval
        self._min_refresh_interval = min_refresh_interval
        self._activation_delay = timedelta(seconds=activation_delay)
        self._published: dict[str, ring.PublicKey] = {}
        self._last_attempt = float("-inf")
        self._refreshing = asyncio.Lock()
        self._listeners: list[Callable[[], Awaitable[None]]] = []

    async def call(self, operation: Callable[..., T], *args: Any) -> T:
        """A backend operation, off the event loop (backends block on files or HTTP)."""
        return await anyio.to_thread.run_sync(operation, *args)

    # --- what verifiers and the signer read ---------------------------------------------------------------
    def get(self, kid: str) -> ring.PublicKey | None:
        return self._published.get(kid)

    def published(self) -> list[ring.PublicKey]:
        return sorted(self._published.values(), key=lambda k: k.version)

    def signing_key(self) -> ring.PublicKey:
        return ring.signing_key(self.published(), datetime.now(UTC), self._activation_delay)

    def signing_key_age_seconds(self) -> float:
        """How old the key that signs now is (`ghostpay_signing_key_age_seconds`); NaN when none is published."""
        if not self._published:
            return float("nan")
        return (datetime.now(UTC) - self.signing_key().created_at).total_seconds()

    def active_kid(self) -> str | None:
        """The kid of the key that signs now (`ghostpay_signing_key_info`); None when none is published."""
        return self.signing_key().kid if self._published else None

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return {"keys": [key.jwk() for key in self.published()]}

    # --- refreshing --------------------------------------------------------------------------------------
    def on_refresh(self, listener: Callable[[], Awaitable[None]]) -> None:
        """Run `listener` after every successful periodic refresh (the cards service rewraps its data keys
        there) — not after one an unknown kid forced, so neither a request nor a flood of bogus kids waits for
        or repeats that work."""
        self._listeners.append(listener)

    async def refresh(self) -> bool:
        """Load the published versions; on failure keep the last good copy. True if it succeeded."""
        async with self._refreshing:
            self._last_attempt = time.monotonic()
            try:
                published = await self.call(self.backend.public_keys)
            except Exception as exc:
                telemetry.KEY_REFRESH_FAILURES.inc()
                log.warning("key refresh failed; verifying with the %d cached keys: %s", len(self._published), exc)
                return False
            if not published:
                log.warning("the key backend published no keys; keeping the %d cached keys", len(self._published))
                return False
            if self._published:
                telemetry.KEY_VERSIONS_PUBLISHED.inc(len({k.kid for k in published} - self._published.keys()))
            self._published = {k.kid: k for k in published}
        return True

    async def refresh_for_unknown_kid(self, kid: str) -> ring.PublicKey | None:
        """Refresh unless one was attempted less than `min_refresh_interval` ago, then look `kid` up again."""
        if self._refreshing.locked():
            async with self._refreshing:  # one is running: its answer is as fresh as ours would be
                pass
        elif time.monotonic() - self._last_attempt >= self._min_refresh_interval:
            await self.refresh()
        return self._published.get(kid)

    async def run(self) -> None:
        """Refresh every `refresh_interval` seconds until cancelled, then run the listeners."""
        while True:
            await asyncio.sleep(self._refresh_interval)
            if await self.refresh():
                await self._notify()

    async def _notify(self) -> None:
        for listener in self._listeners:
            try:
                await listener()
            except Exception:
                log.exception("after-refresh step failed")
