"""The operator's one Redis write: an instance's rate-limit policy (`ratelimits.document`) into its key.

Reached with the instance's own Redis URL (`spec.redis.url`, or the URL in `spec.redis.secretRef`, credentials
included; or the operator's own user's, `spec.redis.operatorSecretRef`), one short-lived connection per write and
short timeouts, so an unreachable Redis costs a pass at most a few seconds and never stops the rest of it. The only
command is `SET key value GET` (the value before tells a change, or a lost key restored, from a rewrite of the
same limits), so a Redis ACL user limited to `~ghostpay:ratelimits:*` and `+set` is enough (docs/operator.md).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry  # the asyncio one: redis-py 8 warns of (and converts) a synchronous one
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ConnectionError, NoPermissionError, RedisError, TimeoutError

from ghostpay_operator.ratelimits import Write, Written, unusable

TIMEOUT_SECONDS = 3.0


def _reason(exc: Exception) -> str:
    # redis-py reports a wrong password during its connect handshake as a plain ConnectionError: the text tells it.
    refused = any(word in str(exc) for word in ("password", "NOAUTH", "NOPERM", "permission"))
    if isinstance(exc, AuthenticationError | NoPermissionError) or refused:
        return "RedisRefused"
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        return "RedisUnreachable"
    return "RedisError"


async def write(target: Write) -> Written:
    """Write the policy; never raises for a Redis problem (the answer says it)."""
    if (answer := unusable(target)) is not None:
        return answer
    client = aioredis.from_url(
        target.url,
        protocol=2,  # as the services' client: no RESP3 handshake (redis-py 8's default) for a Redis before 6 to refuse
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),  # the next resync is the retry
        decode_responses=True,
    )
    try:
        previous = await client.set(target.key, target.document, get=True)
    except (RedisError, OSError) as exc:
        return Written(ok=False, reason=_reason(exc), error=f"{type(exc).__name__}: {str(exc)[:200]}")
    finally:
        await client.aclose()
    return Written(ok=True, previous=previous if isinstance(previous, str) else None)
