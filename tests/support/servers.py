"""Real PostgreSQL and Redis for the test suite, started by the suite itself (the same code as `ghostpay dev`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from ghostpay.core import db
from ghostpay.dev import EmbeddedPostgres, EmbeddedRedis


@dataclass(frozen=True)
class Servers:
    root: Path
    database_url: str
    redis_url: str
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis


@contextmanager
def running_servers() -> Iterator[Servers]:
    # Short path: Unix socket paths are limited to 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="gp-", dir="/tmp"))
    postgres, redis = EmbeddedPostgres(root / "pg"), EmbeddedRedis(root / "redis")
    database_url = postgres.start()
    try:
        redis_url = redis.start()
        try:
            yield Servers(root, database_url, redis_url, postgres, redis)
        finally:
            redis.stop()
    finally:
        postgres.stop()


async def fresh_database(admin_url: str, name: str) -> str:
    """A new, migrated database on the test server; returns its URL."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = admin_url.replace("/ghostpay?", f"/{name}?")
    await db.migrate(url)
    return url
