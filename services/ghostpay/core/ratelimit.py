"""Per-client rate limits shared by every replica: one atomic GCRA script in Redis, one round trip.

Called by the edge middleware for each API request; the same script also reads the client's revocation marker
(`core.revocation`), so a disabled client's tokens are refused at no extra cost, and the instance's rate-limit
policy (`GHOSTPAY_RATE_LIMIT_POLICY_KEY`, a JSON document the operator writes from `spec.rateLimits`), so a changed
limit applies on the next request without restarting anything; while that key is absent the limits the process
started with (`GHOSTPAY_RATE_LIMITS`) apply. When Redis cannot be reached
the limiter fails open (counted in `ghostpay_rate_limiter_errors_total`, logged at most once a minute) so
payments do not go down with it, unless `GHOSTPAY_RATE_LIMIT_FAIL_CLOSED=true`, which answers 503 instead. Failing
open also lets a disabled client's tokens through until Redis is back.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from importlib import resources
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ghostpay.core import redis_client, telemetry
from ghostpay.core.errors import Unavailable
from ghostpay.core.settings import RateLimit

log = logging.getLogger("ghostpay.ratelimit")
SCRIPT = resources.files("ghostpay.core").joinpath("gcra.lua").read_text()


class Decision(NamedTuple):
    """The outcome for one request, and what the `RateLimit-*` headers say about it. A named tuple: one is built
    for every request, at a third of a frozen dataclass's cost."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_seconds: int
    reset_seconds: int
    revoked: bool = False  # the caller's client has been disabled: refuse the request whatever its budget
    policy: RateLimit | None = None  # the budget that decided (the instance's policy, or the defaults)

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers


def decision_from_script(reply: list[Any], policy: RateLimit) -> Decision:
    """The script's reply as a decision; its last two fields (when present) are the rate and burst that applied,
    which differ from `policy` (the defaults) when the instance's policy key named others."""
    allowed, remaining, retry_after_us, reset_us = map(int, reply[:4])
    applied = _applied_policy(reply[5], reply[6]) if len(reply) >= 7 else policy
    return Decision(
        bool(allowed),
        applied.burst,
        max(0, remaining),
        0 if allowed else max(1, math.ceil(retry_after_us / 1e6)),
        math.ceil(reset_us / 1e6),
        len(reply) > 4 and int(reply[4]) != 0,
        applied,
    )


# Built once per (rate, burst) the script names (an instance has a few, which change rarely): validating a model on
# every request cost 8,000 of the charge path's 632,000 instructions per charge (callgrind, PostgreSQL and Redis faked).
# The instances are shared between decisions: nothing changes them.
@functools.lru_cache(maxsize=64)
def _applied_policy(rate: Any, burst: Any) -> RateLimit:
    return RateLimit(requests_per_second=float(rate), burst=int(burst))


class RateLimiter:
    def __init__(
        self, client: aioredis.Redis, fail_closed: bool, timeout_seconds: float, policy_key: str | None = None
    ) -> None:
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._fail_closed = fail_closed
        self._timeout_seconds = timeout_seconds  # each call's deadline (redis_client.deadline)
        self._policy_key = policy_key  # the instance's live policy (set by the operator), or None: defaults only
        self._last_warning = 0.0

    async def check(
        self, bucket: str, policy: RateLimit, revocation_key: str | None = None, role: str | None = None
    ) -> Decision:
        """Spend one unit of `bucket`'s budget; with `revocation_key`, also say whether that marker is set. With
        `role`, the instance's policy for that role applies when its key holds one, else `policy` (the defaults)."""
        interval_us = 1e6 / policy.requests_per_second
        live = [self._policy_key] if self._policy_key and role is not None else []
        keys = [f"ghostpay:rl:{bucket}", *live, *([revocation_key] if revocation_key else [])]
        args: list[Any] = [interval_us, policy.burst, *([role] if live else [])]
        started = time.perf_counter()
        try:
            async with redis_client.deadline(self._timeout_seconds):
                reply = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            return self._on_redis_error(exc, policy)
        finally:
            telemetry.RATE_LIMITER_DURATION.observe(time.perf_counter() - started)
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
            async with redis_client.deadline(self._timeout_seconds):
                await self._client.delete(f"ghostpay:rl:{bucket}")
        except (RedisError, OSError):
            telemetry.RATE_LIMITER_ERRORS.inc()
