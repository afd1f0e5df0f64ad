"""Revocation markers: the Redis key that makes every service refuse a disabled client's tokens.

The auth service writes `ghostpay:disabled:<client_id>` when a client is disabled (PostgreSQL's
`clients.disabled_at` is the durable record) and re-seeds the markers from there every few seconds, so a Redis
restart or eviction loses them only for that long. The rate limiter's GCRA script reads the marker in the same
round trip that spends the caller's budget (`ratelimit.RateLimiter.check`), so checking costs nothing extra.

A marker lives as long as a token issued just before the disable can (the token lifetime, plus a margin): after
that no token of the client is left, and the client can get no new one (login checks `disabled_at`).
"""

from __future__ import annotations

MARKER_PREFIX = "ghostpay:disabled:"
# Beyond the token lifetime: a margin for clock differences between the issuer, PostgreSQL and Redis.
MARGIN_SECONDS = 60


def marker_key(client_id: str) -> str:
    return MARKER_PREFIX + client_id


def marker_lifetime_seconds(token_ttl_seconds: int) -> int:
    return token_ttl_seconds + MARGIN_SECONDS
