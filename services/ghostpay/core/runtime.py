"""What a running service holds: settings, the database pool, Redis, keys, the token verifier, the limiter.

Opened once in the app's lifespan and reached from handlers through `deps.runtime`; nothing else keeps
connections in module globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from ghostpay.core import db
from ghostpay.core.keystore import LocalKeyStore
from ghostpay.core.ratelimit import RateLimiter
from ghostpay.core.settings import Settings
from ghostpay.core.tokens import TokenVerifier


@dataclass
class Runtime:
    settings: Settings
    service_name: str
    pool: asyncpg.Pool
    redis: aioredis.Redis
    keys: LocalKeyStore
    verifier: TokenVerifier
    limiter: RateLimiter
    extras: dict[str, Any] = field(default_factory=dict)  # per-service state, e.g. the PAN data key ring

    async def close(self) -> None:
        await self.pool.close()
        await self.redis.aclose()


async def open_runtime(settings: Settings, service_name: str) -> Runtime:
    keys = LocalKeyStore(settings.keys_dir).open()
    redis_client = aioredis.from_url(
        settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
    )
    pool = await db.create_pool(settings)
    return Runtime(
        settings=settings,
        service_name=service_name,
        pool=pool,
        redis=redis_client,
        keys=keys,
        verifier=TokenVerifier(keys.verification_keys, settings.issuer, settings.audience),
        limiter=RateLimiter(redis_client, settings.rate_limit_fail_closed),
    )
