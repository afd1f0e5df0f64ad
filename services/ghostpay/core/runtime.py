"""What a running service holds: settings, the database pool, Redis, keys, the token verifier, the limiter.

Opened once in the app's lifespan (kept on `app.state.runtime`) and reached from handlers through the
`deps.get_runtime` dependency; nothing else keeps connections in module globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import asyncpg
import redis.asyncio as aioredis

import ghostpay
from ghostpay.core import db, redis_client, telemetry
from ghostpay.core.keys import open_backend
from ghostpay.core.keys.cache import KeyCache
from ghostpay.core.ratelimit import RateLimiter
from ghostpay.core.settings import Settings
from ghostpay.core.tokens import TokenVerifier


@dataclass
class Runtime:
    settings: Settings
    service_name: str
    pool: asyncpg.Pool
    redis: aioredis.Redis
    keys: KeyCache
    verifier: TokenVerifier
    limiter: RateLimiter
    extras: dict[str, Any] = field(default_factory=dict)  # per-service state, e.g. the cards' PAN keys

    async def close(self) -> None:
        await self.pool.close()
        await self.redis.aclose()
        self.keys.backend.close()


async def open_runtime(settings: Settings, service_name: str) -> Runtime:
    """Everything a service holds, or nothing: what was opened before a failure is closed again."""
    backend = await anyio.to_thread.run_sync(open_backend, settings)
    keys = KeyCache(
        backend,
        refresh_interval=settings.key_refresh_seconds,
        min_refresh_interval=settings.key_min_refresh_seconds,
        activation_delay=settings.key_activation_delay_seconds,
    )
    try:
        if not await keys.refresh():
            raise RuntimeError("Could not load the signing keys (see the warning above); not starting.")
        pool = await db.create_pool(settings)
    except BaseException:
        backend.close()
        raise
    telemetry.bind_runtime_metrics(  # a process holds one runtime
        pool_size=pool.get_size,
        pool_idle=pool.get_idle_size,
        pool_max=settings.db_pool_max,
        key_age=keys.signing_key_age_seconds,
        active_kid=keys.active_kid,
        package_version=ghostpay.__version__,
        release=settings.version,
        key_max_age=settings.signing_key_max_age_seconds,
    )
    redis = redis_client.open_client(settings.redis_url, settings.redis_timeout_seconds)
    return Runtime(
        settings=settings,
        service_name=service_name,
        pool=pool,
        redis=redis,
        keys=keys,
        verifier=TokenVerifier(keys, settings.issuer, settings.audience, settings.token_leeway_seconds),
        limiter=RateLimiter(
            redis, settings.rate_limit_fail_closed, settings.redis_timeout_seconds, settings.rate_limit_policy_key
        ),
    )
