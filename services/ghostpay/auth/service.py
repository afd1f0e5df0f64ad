"""Auth rules: verify client secrets (argon2id, bounded: `auth.hashing`), issue tokens, create, disable and
re-secret clients, keep the Redis revocation markers seeded, publish keys.

Called by `auth.api` and, for the hasher, the admin bootstrap and the marker re-seeding, by the app's start-up.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from ghostpay.auth import login_limit, store
from ghostpay.auth.hashing import SecretHasher
from ghostpay.core import redis_client, revocation
from ghostpay.core.errors import InvalidRequest, NotFound, Unauthorized
from ghostpay.core.ids import new_id
from ghostpay.core.runtime import Runtime
from ghostpay.core.settings import Role
from ghostpay.core.tokens import Principal, claims_for, issue_token

log = logging.getLogger("ghostpay.auth")
# How often the revocation markers are rewritten from PostgreSQL: a Redis that lost them (restart, eviction)
# has them back within this long.
RESEED_INTERVAL_SECONDS = 5.0
_HASHER = "auth.hasher"


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class NewClient:
    client: store.ClientRow
    client_secret: str


def principal_of(client: store.ClientRow) -> Principal:
    role: Role = client.role  # type: ignore[assignment]  # the table's CHECK admits only roles
    merchant_id = client.client_id if role == "merchant" else None
    return Principal(client.client_id, role, merchant_id, client.user_id if role == "user" else None)


def open_hasher(runtime: Runtime) -> None:
    """Start-up: the hasher, made on the event loop (its limiter belongs there; its dummy hash, one argon2 run,
    blocks nothing: no request is served yet)."""
    runtime.extras[_HASHER] = SecretHasher(runtime.settings)


def _hasher(runtime: Runtime) -> SecretHasher:
    hasher: SecretHasher = runtime.extras[_HASHER]
    return hasher


async def issue_for_credentials(runtime: Runtime, client_id: str, client_secret: str) -> IssuedToken:
    hasher = _hasher(runtime)
    await login_limit.spend_attempt(runtime, client_id)
    client = await store.get_client(runtime.pool, client_id)
    # Disabled or unknown clients pay the same argon2 run as a wrong secret: the answer's timing tells nothing.
    known = client if client is not None and client.disabled_at is None else None
    matches = await hasher.matches(known.secret_hash if known else None, client_secret)
    if known is None or not matches:
        raise Unauthorized("Unknown client or wrong secret.")
    upgraded = await hasher.hash(client_secret) if hasher.needs_rehash(known.secret_hash) else None
    if not await store.confirm_secret_hash(runtime.pool, known.client_id, known.secret_hash, upgraded):
        raise Unauthorized("Unknown client or wrong secret.")  # rotated or disabled while argon2 ran
    await login_limit.forget_failures(runtime, client_id)
    ttl = runtime.settings.token_ttl_seconds
    claims = claims_for(principal_of(known), runtime.settings.issuer, runtime.settings.audience, ttl)
    return IssuedToken(await issue_token(runtime.keys, claims), ttl)


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


async def create_client(runtime: Runtime, name: str, role: Role, user_id: str | None) -> NewClient:
    if role == "user" and not user_id:
        raise InvalidRequest("user_id is required for a client with the user role.", field="user_id")
    if role != "user" and user_id is not None:  # silently dropping it would hide the caller's mistake
        raise InvalidRequest(f"user_id is only for a client with the user role, not {role}.", field="user_id")
    secret = _new_secret()
    client = await store.insert_client(
        runtime.pool, new_id("cli"), name, role, user_id, await _hasher(runtime).hash(secret)
    )
    return NewClient(client, secret)


async def rotate_secret(runtime: Runtime, client_id: str) -> str:
    """A new secret for an enabled client; the old one stops at once (tokens already issued stay valid)."""
    secret = _new_secret()
    if not await store.replace_secret_hash(runtime.pool, client_id, await _hasher(runtime).hash(secret)):
        raise NotFound(f"No enabled client {client_id}.")
    return secret


async def disable_client(runtime: Runtime, client_id: str) -> None:
    """Disable for good: no new token (login checks PostgreSQL), and the tokens it holds are refused by every
    service as soon as the Redis marker is written (now, or by the next re-seed if Redis is unreachable)."""
    age = await store.disable(runtime.pool, client_id)
    if age is None:
        raise NotFound(f"No client {client_id}.")
    await _write_markers(runtime, [(client_id, age)])


async def _write_markers(runtime: Runtime, disabled: list[tuple[str, float]]) -> None:
    lifetime = revocation.marker_lifetime_seconds(runtime.settings.token_ttl_seconds)
    try:
        async with (
            redis_client.deadline(runtime.settings.redis_timeout_seconds),
            runtime.redis.pipeline(transaction=False) as pipe,
        ):
            for client_id, age in disabled:
                if (left := int(lifetime - age)) > 0:
                    pipe.set(revocation.marker_key(client_id), "1", ex=left)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("could not write revocation markers to Redis (%s); retrying at the next re-seed", exc)


async def reseed_markers(runtime: Runtime) -> None:
    """Background loop of the auth service: rewrite the markers of recently disabled clients from PostgreSQL."""
    lifetime = revocation.marker_lifetime_seconds(runtime.settings.token_ttl_seconds)
    while True:
        try:
            await _write_markers(runtime, await store.disabled_since(runtime.pool, lifetime))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("could not read disabled clients (%s); retrying", exc)
        await asyncio.sleep(RESEED_INTERVAL_SECONDS)


async def bootstrap_admin(runtime: Runtime, client_id: str, client_secret: str) -> None:
    await store.upsert_admin(runtime.pool, client_id, await _hasher(runtime).hash(client_secret))


def jwks(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    return runtime.keys.jwks()
