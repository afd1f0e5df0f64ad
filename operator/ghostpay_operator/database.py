"""The one question the operator asks the instance's database: does it hold card data keys that a local key
store wrapped? Asked only before making a new key store (so at most once in an instance's life, normally), since
making one over such data would hide that the card numbers can no longer be opened.

Called by `reconcile`; read-only, one short connection, bounded by a timeout.
"""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger("ghostpay_operator.database")

TIMEOUT_SECONDS = 3.0
# Wrapped keys are `<backend>:v<n>:<base64>` (ghostpay.core.keys.wrapping); a Vault-wrapped one needs no local store.
_QUERY = "SELECT EXISTS (SELECT 1 FROM data_keys WHERE wrapped_key LIKE 'local:%'::bytea)"


async def holds_local_data_keys(dsn: str) -> bool | None:
    """True or False; None when the database cannot be asked (unreachable, refused, a malformed DSN). A database
    not migrated yet holds none."""
    try:
        connection = await asyncpg.connect(dsn, timeout=TIMEOUT_SECONDS)
    except Exception as exc:  # any failure to connect means the same here: we cannot know
        log.warning("cannot ask the database whether it holds card data keys: %s", type(exc).__name__)
        return None
    try:
        return bool(await connection.fetchval(_QUERY, timeout=TIMEOUT_SECONDS))
    except asyncpg.UndefinedTableError:
        return False
    except (asyncpg.PostgresError, TimeoutError) as exc:
        log.warning("cannot ask the database whether it holds card data keys: %s", type(exc).__name__)
        return None
    finally:
        await connection.close(timeout=TIMEOUT_SECONDS)
