"""PostgreSQL: the connection pool and the versioned migrations (`ghostpay migrate`).

Migrations are the numbered `migrations/NNNN_name.sql` files, each applied once in its own transaction and
recorded in `schema_migrations`. A session-level advisory lock makes two pods running `migrate` at once
take turns, so the second finds nothing left to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from importlib import resources
from typing import Any

import asyncpg

from ghostpay.core.settings import Settings

log = logging.getLogger("ghostpay.db")
_MIGRATION_LOCK = 0x6768_6F73_7470_6179  # "ghostpay"
Pool = asyncpg.Pool


async def _no_session_reset(_: asyncpg.Connection) -> None:
    """Pool connections never change session state (no SET, LISTEN or session locks; advisory locks are
    transaction-scoped), so the default reset query on release would only add a round trip to every request.
    asyncpg still rolls back a transaction left open."""


# A new connection that PostgreSQL does not accept by then fails the request (a 503): a client never waits for
# asyncpg's default of a minute while the database is away.
CONNECT_TIMEOUT_SECONDS = 5.0


async def create_pool(
    settings: Settings, init: Callable[[asyncpg.Connection], Coroutine[Any, Any, None]] | None = None
) -> asyncpg.Pool:
    """The service's pool; `init` runs on each new connection (tests use it to watch queries)."""
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        command_timeout=30,
        timeout=CONNECT_TIMEOUT_SECONDS,
        reset=_no_session_reset,
        init=init,
    )
    assert pool is not None
    return pool


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) in order."""
    folder = resources.files("ghostpay.core").joinpath("migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


async def migrate(database_url: str) -> list[str]:
    """Apply what is missing; returns the versions applied by this call."""
    conn = await asyncpg.connect(database_url)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            log.info("applied migration %s", version)
            applied.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied
