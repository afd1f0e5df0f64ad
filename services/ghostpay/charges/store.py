"""SQL for charges (asyncpg). Called by `charges.service`.

`charge` is the hot path: one call of the `ghostpay_charge` database function (migration 0001), so one round
trip does the idempotency check, the single-use update, the charge row, the outbox event and the key record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

_CHARGE_COLUMNS = "charge_id, card_id, merchant_id, amount, currency, status, decline_code, created_at"


@dataclass(frozen=True)
class ChargeRow:
    charge_id: str
    card_id: str
    merchant_id: str
    amount: int
    currency: str
    status: str
    decline_code: str | None
    created_at: datetime


@dataclass(frozen=True)
class ChargeAttempt:
    charge_id: str
    card_id: str
    merchant_scope: str | None  # None: an admin, who may charge any card
    amount: int
    currency: str
    owner_id: str
    idempotency_key: str | None
    request_hash: bytes | None  # with an idempotency key only: what a replay of the key must match


@dataclass(frozen=True)
class Outcome:
    kind: str  # created | replayed | key_reused | in_flight | not_found
    charge: ChargeRow | None


@dataclass(frozen=True)
class Visibility:
    merchant_id: str | None = None
    card_user_id: str | None = None


CHARGE_SQL = "SELECT * FROM ghostpay_charge($1, $2, $3, $4, $5, $6, $7, $8)"


async def charge(pool: asyncpg.Pool, attempt: ChargeAttempt) -> Outcome:
    row = await pool.fetchrow(
        CHARGE_SQL,
        attempt.charge_id,
        attempt.card_id,
        attempt.merchant_scope,
        attempt.amount,
        attempt.currency,
        attempt.owner_id,
        attempt.idempotency_key,
        attempt.request_hash,
    )
    assert row is not None
    values = dict(row)
    kind = values.pop("outcome")
    return Outcome(kind, ChargeRow(**values) if values["charge_id"] else None)


def _visible(visibility: Visibility, first: int) -> tuple[str, list[object]]:
    return (
        f"(${first}::text IS NULL OR ch.merchant_id = ${first}) AND "
        f"(${first + 1}::text IS NULL OR EXISTS "
        f"(SELECT 1 FROM cards c WHERE c.card_id = ch.card_id AND c.user_id = ${first + 1}))",
        [visibility.merchant_id, visibility.card_user_id],
    )


async def get_charge(pool: asyncpg.Pool, charge_id: str, visibility: Visibility) -> ChargeRow | None:
    where, params = _visible(visibility, 2)
    row = await pool.fetchrow(
        f"SELECT {_CHARGE_COLUMNS} FROM charges ch WHERE charge_id = $1 AND {where}", charge_id, *params
    )
    return ChargeRow(**dict(row)) if row else None


async def list_charges(
    pool: asyncpg.Pool, visibility: Visibility, card_id: str | None, limit: int, starting_after: ChargeRow | None
) -> list[ChargeRow]:
    """Newest first, at most `limit` rows after `starting_after`."""
    where, params = _visible(visibility, 1)
    rows = await pool.fetch(
        f"""SELECT {_CHARGE_COLUMNS} FROM charges ch
            WHERE {where} AND ($3::text IS NULL OR card_id = $3)
              AND ($4::timestamptz IS NULL OR (created_at, charge_id) < ($4, $5))
            ORDER BY created_at DESC, charge_id DESC LIMIT $6""",
        *params,
        card_id,
        starting_after.created_at if starting_after else None,
        starting_after.charge_id if starting_after else None,
        limit,
    )
    return [ChargeRow(**dict(r)) for r in rows]
