"""The operator's one question to the database (does it hold data keys a local key store wrapped?) against a
real PostgreSQL: not migrated, empty, Vault-wrapped only, locally wrapped, and out of reach."""

from __future__ import annotations

import asyncpg

from ghostpay_operator import database
from tests.support.servers import Servers, fresh_database


async def _insert(url: str, wrapped: bytes) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO data_keys (key_id, wrapped_key) VALUES ($1, $2)", wrapped[:12].decode(), wrapped
        )
    finally:
        await connection.close()


async def test_a_database_without_local_data_keys_holds_none(servers: Servers) -> None:
    url = await fresh_database(servers.database_url, "gp_operator_keys_check")
    assert await database.holds_local_data_keys(url) is False
    await _insert(url, b"vault:v1:AAAA")
    assert await database.holds_local_data_keys(url) is False
    await _insert(url, b"local:v2:BBBB")
    assert await database.holds_local_data_keys(url) is True


async def test_a_database_not_migrated_yet_holds_none(servers: Servers) -> None:
    admin = await asyncpg.connect(servers.database_url)
    try:
        await admin.execute('DROP DATABASE IF EXISTS "gp_operator_unmigrated" WITH (FORCE)')
        await admin.execute('CREATE DATABASE "gp_operator_unmigrated"')
    finally:
        await admin.close()
    url = servers.database_url.replace("/ghostpay?", "/gp_operator_unmigrated?")
    assert await database.holds_local_data_keys(url) is False


async def test_a_database_out_of_reach_cannot_answer() -> None:
    assert await database.holds_local_data_keys("postgresql://nobody@127.0.0.1:9/none") is None
    assert await database.holds_local_data_keys("not a dsn") is None
    assert await database.holds_local_data_keys("postgresql://nobody@db.invalid/none") is None
