"""SQL for cards and PAN data keys (asyncpg, explicit queries). Called by `cards.service`.

A card's visible `status` is computed here: an active card past `expires_at` reads as `expired`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

_CARD_COLUMNS = """card_id, user_id, merchant_id,
    CASE WHEN status = 'active' AND expires_at <= now() THEN 'expired' ELSE status END AS status,
    amount, currency, expires_at, created_at, exp_month, exp_year, last4"""


@dataclass(frozen=True)
class CardRow:
    card_id: str
    user_id: str
    merchant_id: str
    status: str
    amount: int
    currency: str
    expires_at: datetime
    created_at: datetime
    exp_month: int
    exp_year: int
    last4: str


@dataclass(frozen=True)
class Visibility:
    """Which cards a caller may see: None means no restriction on that column."""

    merchant_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class NewCard:
    card_id: str
    merchant_id: str
    user_id: str
    amount: int
    currency: str
    expires_at: datetime
    exp_month: int
    exp_year: int
    last4: str
    pan_ciphertext: bytes
    data_key_id: str
    pan_hash: bytes


KeyPurpose = Literal["pan", "lookup"]


async def latest_data_key(pool: asyncpg.Pool, purpose: KeyPurpose) -> tuple[str, bytes] | None:
    row = await pool.fetchrow(
        "SELECT key_id, wrapped_key FROM data_keys WHERE purpose = $1 ORDER BY created_at DESC LIMIT 1", purpose
    )
    return (row["key_id"], row["wrapped_key"]) if row else None


async def insert_data_key(pool: asyncpg.Pool, key_id: str, wrapped_key: bytes, purpose: KeyPurpose) -> bool:
    """False if a look-up key already exists (another process made it first): the caller reads that one."""
    status = await pool.execute(
        "INSERT INTO data_keys (key_id, wrapped_key, purpose) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        key_id,
        wrapped_key,
        purpose,
    )
    return bool(status == "INSERT 0 1")


async def wrapped_keys(pool: asyncpg.Pool) -> list[tuple[str, bytes]]:
    return [(r["key_id"], r["wrapped_key"]) for r in await pool.fetch("SELECT key_id, wrapped_key FROM data_keys")]


async def replace_wrapped_key(pool: asyncpg.Pool, key_id: str, old: bytes, new: bytes) -> None:
    """Only if nobody rewrapped it meanwhile (every cards process does this after a rotation)."""
    await pool.execute("UPDATE data_keys SET wrapped_key = $3 WHERE key_id = $1 AND wrapped_key = $2", key_id, old, new)


async def insert_card(pool: asyncpg.Pool, card: NewCard) -> CardRow:
    """The card and its `card_issued` outbox event, in one statement (so one transaction)."""
    row = await pool.fetchrow(
        f"""WITH card AS (
            INSERT INTO cards (card_id, merchant_id, user_id, amount, currency, expires_at, exp_month, exp_year,
                               last4, pan_ciphertext, data_key_id, pan_hash)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            RETURNING *
        ), event AS (
            INSERT INTO outbox (event_type, payload)
            SELECT 'card_issued', jsonb_build_object('card_id', card_id, 'merchant_id', merchant_id) FROM card
        )
        SELECT {_CARD_COLUMNS} FROM card""",
        card.card_id,
        card.merchant_id,
        card.user_id,
        card.amount,
        card.currency,
        card.expires_at,
        card.exp_month,
        card.exp_year,
        card.last4,
        card.pan_ciphertext,
        card.data_key_id,
        card.pan_hash,
    )
    assert row is not None
    return CardRow(**dict(row))


def _visible(visibility: Visibility, first: int) -> tuple[str, list[object]]:
    """A WHERE fragment (placeholders from `$first`) and its parameters."""
    return (
        f"(${first}::text IS NULL OR merchant_id = ${first}) "
        f"AND (${first + 1}::text IS NULL OR user_id = ${first + 1})",
        [visibility.merchant_id, visibility.user_id],
    )


async def get_card(pool: asyncpg.Pool, card_id: str, visibility: Visibility) -> CardRow | None:
    where, params = _visible(visibility, 2)
    row = await pool.fetchrow(f"SELECT {_CARD_COLUMNS} FROM cards WHERE card_id = $1 AND {where}", card_id, *params)
    return CardRow(**dict(row)) if row else None


async def list_cards(
    pool: asyncpg.Pool,
    visibility: Visibility,
    user_id: str | None,
    status: str | None,
    limit: int,
    starting_after: CardRow | None,
) -> list[CardRow]:
    """Newest first, at most `limit` rows after `starting_after`."""
    where, params = _visible(visibility, 1)
    rows = await pool.fetch(
        f"""SELECT * FROM (SELECT {_CARD_COLUMNS} FROM cards
               WHERE {where} AND ($3::text IS NULL OR user_id = $3)
                 AND ($5::timestamptz IS NULL OR (created_at, card_id) < ($5, $6))) AS visible
            WHERE ($4::text IS NULL OR status = $4)
            ORDER BY created_at DESC, card_id DESC LIMIT $7""",
        *params,
        user_id,
        status,
        starting_after.created_at if starting_after else None,
        starting_after.card_id if starting_after else None,
        limit,
    )
    return [CardRow(**dict(r)) for r in rows]


async def close_card(pool: asyncpg.Pool, card_id: str, visibility: Visibility) -> CardRow | None:
    where, params = _visible(visibility, 2)
    row = await pool.fetchrow(
        f"""UPDATE cards SET status = 'closed' WHERE card_id = $1 AND {where} AND status = 'active'
            RETURNING {_CARD_COLUMNS}""",
        card_id,
        *params,
    )
    return CardRow(**dict(row)) if row else None
