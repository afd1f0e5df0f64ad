"""SQL for API clients (asyncpg, explicit queries). Called by `auth.service`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class ClientRow:
    client_id: str
    name: str
    role: str
    user_id: str | None
    secret_hash: str
    created_at: datetime
    disabled_at: datetime | None = None


async def get_client(pool: asyncpg.Pool, client_id: str) -> ClientRow | None:
    row = await pool.fetchrow(
        "SELECT client_id, name, role, user_id, secret_hash, created_at, disabled_at FROM clients WHERE client_id = $1",
        client_id,
    )
    return ClientRow(**dict(row)) if row else None


async def insert_client(
    pool: asyncpg.Pool, client_id: str, name: str, role: str, user_id: str | None, secret_hash: str
) -> ClientRow:
    row = await pool.fetchrow(
        "INSERT INTO clients (client_id, name, role, user_id, secret_hash) VALUES ($1, $2, $3, $4, $5) "
        "RETURNING client_id, name, role, user_id, secret_hash, created_at",
        client_id,
        name,
        role,
        user_id,
        secret_hash,
    )
    assert row is not None
    return ClientRow(**dict(row))


async def upsert_admin(pool: asyncpg.Pool, client_id: str, secret_hash: str) -> None:
    """Create the bootstrap admin, or give it the configured secret (and the admin role) again."""
    await pool.execute(
        "INSERT INTO clients (client_id, name, role, secret_hash) VALUES ($1, 'bootstrap admin', 'admin', $2) "
        # disabled_at is left alone: a restart must not re-enable an admin that was disabled (say, as leaked).
        "ON CONFLICT (client_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, role = 'admin', user_id = NULL",
        client_id,
        secret_hash,
    )


async def confirm_secret_hash(pool: asyncpg.Pool, client_id: str, verified_hash: str, new_hash: str | None) -> bool:
    """After a secret was verified against `verified_hash`: is that still the client's hash, and is the client
    still enabled? (A rotation or a disable may have landed while argon2 ran.) With `new_hash`, the hash is
    upgraded to it in the same statement."""
    if new_hash is None:  # a plain read: no row version written per login
        row = await pool.fetchval(
            "SELECT true FROM clients WHERE client_id = $1 AND secret_hash = $2 AND disabled_at IS NULL",
            client_id,
            verified_hash,
        )
    else:
        row = await pool.fetchval(
            "UPDATE clients SET secret_hash = $3 "
            "WHERE client_id = $1 AND secret_hash = $2 AND disabled_at IS NULL RETURNING true",
            client_id,
            verified_hash,
            new_hash,
        )
    return row is True


async def replace_secret_hash(pool: asyncpg.Pool, client_id: str, secret_hash: str) -> bool:
    """Give an enabled client a new secret hash; False if there is no such enabled client."""
    row = await pool.fetchval(
        "UPDATE clients SET secret_hash = $2 WHERE client_id = $1 AND disabled_at IS NULL RETURNING true",
        client_id,
        secret_hash,
    )
    return row is True


async def disable(pool: asyncpg.Pool, client_id: str) -> float | None:
    """Mark the client disabled (once: disabling again keeps the first time); how many seconds ago it was, or
    None if there is no such client."""
    age: float | None = await pool.fetchval(
        "UPDATE clients SET disabled_at = coalesce(disabled_at, now()) WHERE client_id = $1 "
        "RETURNING extract(epoch FROM now() - disabled_at)::float8",
        client_id,
    )
    return age


async def disabled_since(pool: asyncpg.Pool, seconds: int) -> list[tuple[str, float]]:
    """(client_id, seconds since it was disabled) for the clients disabled within the last `seconds`."""
    rows = await pool.fetch(
        "SELECT client_id, extract(epoch FROM now() - disabled_at)::float8 AS age FROM clients "
        "WHERE disabled_at > now() - make_interval(secs => $1)",
        float(seconds),
    )
    return [(row["client_id"], row["age"]) for row in rows]
