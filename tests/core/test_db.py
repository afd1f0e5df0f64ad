"""Migrations: versioned, idempotent, and safe when two pods run them at once."""

from __future__ import annotations

import asyncio

import asyncpg

from ghostpay.core import db
from tests.support.servers import Servers, fresh_database


async def test_migrating_twice_applies_nothing_the_second_time(database_url: str) -> None:
    assert await db.migrate(database_url) == []


async def test_two_concurrent_migrations_apply_each_version_once(servers: Servers) -> None:
    url = await fresh_database(servers.database_url, "gp_concurrent_migrate")
    conn = await asyncpg.connect(url)
    await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    await conn.close()
    results = await asyncio.gather(db.migrate(url), db.migrate(url))
    versions = [v for v, _ in db.migration_files()]
    assert sorted(results[0] + results[1]) == versions  # every version applied by exactly one of the two
    conn = await asyncpg.connect(url)
    try:
        recorded = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert [r["version"] for r in recorded] == versions
