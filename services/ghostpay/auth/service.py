"""Auth rules: verify client secrets (argon2id, constant time), issue tokens, create clients, publish keys.

Called by `auth.api` and, for the admin bootstrap, by the app's start-up.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ghostpay.auth import login_limit, store
from ghostpay.core.errors import InvalidRequest, Unauthorized
from ghostpay.core.ids import new_id
from ghostpay.core.runtime import Runtime
from ghostpay.core.settings import Role
from ghostpay.core.tokens import Principal, claims_for, issue_token

_hasher = PasswordHasher()  # argon2id with the library's current recommended cost
# Verified against when the client does not exist, so an unknown id costs as long as a wrong secret.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


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


async def _secret_matches(secret_hash: str, secret: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(secret_hash, secret)
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(verify)


async def issue_for_credentials(runtime: Runtime, client_id: str, client_secret: str) -> IssuedToken:
    await login_limit.spend_attempt(runtime, client_id)
    client = await store.get_client(runtime.pool, client_id)
    matches = await _secret_matches(client.secret_hash if client else _DUMMY_HASH, client_secret)
    if client is None or not matches:
        raise Unauthorized("Unknown client or wrong secret.")
    await login_limit.forget_failures(runtime, client_id)
    if _hasher.check_needs_rehash(client.secret_hash):
        await store.update_secret_hash(runtime.pool, client.client_id, await _hash(client_secret))
    ttl = runtime.settings.token_ttl_seconds
    claims = claims_for(principal_of(client), runtime.settings.issuer, runtime.settings.audience, ttl)
    return IssuedToken(await issue_token(runtime.keys, claims), ttl)


async def _hash(secret: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, secret)


async def create_client(runtime: Runtime, name: str, role: Role, user_id: str | None) -> NewClient:
    if role == "user" and not user_id:
        raise InvalidRequest("user_id is required for a client with the user role.", field="user_id")
    if role != "user" and user_id is not None:  # silently dropping it would hide the caller's mistake
        raise InvalidRequest(f"user_id is only for a client with the user role, not {role}.", field="user_id")
    secret = secrets.token_urlsafe(32)
    client = await store.insert_client(
        runtime.pool, new_id("cli"), name, role, user_id, await _hash(secret)
    )
    return NewClient(client, secret)


async def bootstrap_admin(runtime: Runtime, client_id: str, client_secret: str) -> None:
    await store.upsert_admin(runtime.pool, client_id, await _hash(client_secret))


def jwks(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    return runtime.keys.jwks()
