"""Client-secret hashing (argon2id) with bounded memory: at most `auth_hash_concurrency` verifications at once,
at most `auth_hash_queue` waiting, the rest shed with 503 `auth_busy`.

Each argon2 run holds its whole memory cost for its duration, so unbounded concurrency (the thread pool's 40
threads by default) is what let a burst of bad logins exhaust the pod. Made once per auth service at start-up
(`auth.service.open_hasher`) and kept in the runtime.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from ghostpay.core.errors import AuthBusy
from ghostpay.core.settings import Settings

T = TypeVar("T")
RETRY_AFTER_SECONDS = 1


class SecretHasher:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        self._limiter = anyio.CapacityLimiter(settings.auth_hash_concurrency)
        self._admissible = settings.auth_hash_concurrency + settings.auth_hash_queue
        # Running plus waiting, counted here rather than read from the limiter: a task only joins the limiter's
        # queue after a checkpoint, so a burst arriving in one loop iteration would all pass a check of it.
        self._admitted = 0
        # Verified against when the client does not exist, so an unknown id costs as long as a wrong secret:
        # made with the same parameters as every new hash.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def _run(self, work: Callable[[], T]) -> T:
        if self._admitted >= self._admissible:
            raise AuthBusy(
                "Too many logins are being checked right now; retry shortly.",
                response_headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._admitted += 1
        try:
            return await anyio.to_thread.run_sync(work, limiter=self._limiter)
        finally:
            self._admitted -= 1

    async def hash(self, secret: str) -> str:
        return await self._run(lambda: self._hasher.hash(secret))

    async def matches(self, secret_hash: str | None, secret: str) -> bool:
        """Whether `secret` matches `secret_hash`; with None, the same work against the dummy hash, then False.
        Hashes made with other (older) parameters verify too: argon2 reads them from the hash."""

        def verify() -> bool:
            try:
                return self._hasher.verify(secret_hash or self._dummy_hash, secret) and secret_hash is not None
            except (VerificationError, InvalidHashError):
                return False

        return await self._run(verify)

    def needs_rehash(self, secret_hash: str) -> bool:
        """True for a hash made with other parameters than the configured ones (it is upgraded on login)."""
        return self._hasher.check_needs_rehash(secret_hash)
