"""The services' Redis client, bounded by one deadline around each call rather than redis-py's socket timeout.

redis-py's `socket_timeout` sends every command's write through `asyncio.wait_for`, which on Python 3.11 runs it
as a task of its own: 4-10 µs of CPU on each rate-limit call, the charge path's one Redis round trip (measured
against one `asyncio.timeout` around the call, 16 calls in flight). So the client has no socket timeout, and every
caller bounds its call with `deadline(seconds)`: `GHOSTPAY_REDIS_TIMEOUT_SECONDS`, 0.5 by default. A call cut off
there closes its connection (redis-py drops a connection whose command was interrupted), so no later call reads the
late reply; the caller sees a `TimeoutError` (an `OSError`, which the callers catch beside redis-py's own
`RedisError`). The readiness probe's ping has the same deadline, and the probe's own 2 s besides.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

# RESP2, named: redis-py 8 defaults to RESP3, whose handshake (HELLO 3) a Redis before 6 refuses, and falls back to
# RESP2 with a warning after a wasted round trip per connection. The suite passes against a real Redis on both.
PROTOCOL = 2


def open_client(url: str, timeout_seconds: float) -> aioredis.Redis:
    """A client for `url`: its connections are opened on first use (within `timeout_seconds`), checked when idle
    for 30 s."""
    return aioredis.from_url(
        url, protocol=PROTOCOL, socket_timeout=None, socket_connect_timeout=timeout_seconds, health_check_interval=30
    )


def deadline(seconds: float) -> asyncio.Timeout:
    """The bound on one Redis call (`async with deadline(settings.redis_timeout_seconds): ...`)."""
    return asyncio.timeout(seconds)
