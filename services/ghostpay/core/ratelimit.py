"""Per-client rate limits shared by every replica: one atomic GCRA script in Redis, one round trip.

Called by the edge middleware for each API request; the same script also reads the client's revocation marker
(`core.revocation`), so a disabled client's tokens are refused at no extra cost. When Redis cannot be reached
the limiter fails open (counted in `ghostpay_rate_limiter_errors_total`, logged at most once a minute) so
payments do not go down with it, unless `GHOSTPAY_RATE_LIMIT_FAIL_CLOSED=true`, which answers 503 instead. Failing
open also lets a disabled client's tokens through until Redis is back.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from importlib import resources

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ghostpay.core import telemetry
from ghostpay.core.errors import Unavailable
from ghostpay.core.settings import RateLimit

log = logging.getLogger("ghostpay.ratelimit")
SCRIPT = resources.files("ghostpay.core").joinpath("gcra.lua").read_text()


@dataclass(frozen=True)
class Decision:
    """The outcome for one request, and what the `RateLimit-*` headers say about it."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_seconds: int
    reset_seconds: int
    revoked: bool = False  # the caller's client has been disabled: refuse the request whatever its budget

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers


def decision_from_script(reply: list[int], policy: RateLimit) -> Decision:
    allowed, remaining, retry_after_us, reset_us, *rest = (int(x) for x in reply)
    return Decision(
        allowed=bool(allowed),
        limit=policy.burst,
        remaining=max(0, remaining),
        retry_after_seconds=max(1, math.ceil(retry_after_us / 1e6)) if not allowed else 0,
        reset_seconds=math.ceil(reset_us / 1e6),
        revoked=bool(rest and rest[0]),
    )


class RateLimiter:
    def __init__(self, client: aioredis.Redis, fail_closed: bool) -> None:
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._fail_closed = fail_closed
        self._last_warning = 0.0

    async def check(self, bucket: str, policy: RateLimit, revocation_key: str | None = None) -> Decision:
        """Spend one unit of `bucket`'s budget; with `revocation_key`, also say whether that marker is set."""
        interval_us = 1e6 / policy.requests_per_second
        keys = [f"ghostpay:rl:{bucket}", *([revocation_key] if revocation_key else [])]
        try:
            reply = await self._script(keys=keys, args=[interval_us, policy.burst])
        except (RedisError, OSError) as exc:
            return self._on_redis_error(exc, policy)
        return decision_from_script(reply, policy)

    def _on_redis_error(self, exc: Exception, policy: RateLimit) -> Decision:
        telemetry.RATE_LIMITER_ERRORS.inc()
        if time.monotonic() - self._last_warning > 60:
            self._last_warning = time.monotonic()
            log.warning(
                "rate limiter cannot reach Redis (%s); failing %s",
                type(exc).__name__,
                "closed" if self._fail_closed else "open",
            )
        if self._fail_closed:
            raise Unavailable("The rate limiter is unavailable; try again shortly.") from exc
        return Decision(True, policy.burst, policy.burst, 0, 0)

    async def forget(self, bucket: str) -> None:
        """Make `bucket` whole again (its key goes). If Redis cannot be reached it stays as it was, which is safe:
        what it spent comes back with time."""
        try:
            await self._client.delete(f"ghostpay:rl:{bucket}")
        except (RedisError, OSError):
            telemetry.RATE_LIMITER_ERRORS.inc()
