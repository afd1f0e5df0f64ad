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


async def get_client(pool: asyncpg.Pool, client_id: str) -> ClientRow | None:
    row = await pool.fetchrow(
        "SELECT client_id, name, role, user_id, secret_hash, created_at FROM clients WHERE client_id = $1",
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
        "ON CONFLICT (client_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, role = 'admin', user_id = NULL",
        client_id,
        secret_hash,
    )


async def update_secret_hash(pool: asyncpg.Pool, client_id: str, secret_hash: str) -> None:
    await pool.execute("UPDATE clients SET secret_hash = $2 WHERE client_id = $1", client_id, secret_hash)
