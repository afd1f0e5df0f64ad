"""SQL for analytics: draining the outbox into counters, and reading them. Called by `analytics.service`."""

from __future__ import annotations

import asyncpg

# Deleting a batch and adding it to the counters is one statement, so one transaction: an event is applied
# exactly once even if the relay dies mid-way, and SKIP LOCKED lets several replicas relay side by side.
RELAY_SQL = """
WITH batch AS (
    DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
    RETURNING event_type, payload
), increments AS (
    SELECT payload->>'merchant_id' AS merchant_id, 'cards_issued' AS metric, '' AS dimension, 1::bigint AS delta
      FROM batch WHERE event_type = 'card_issued'
    UNION ALL
    SELECT payload->>'merchant_id', 'charges', payload->>'status', 1 FROM batch WHERE event_type = 'charge'
    UNION ALL
    SELECT payload->>'merchant_id', 'volume', payload->>'currency', (payload->>'amount')::bigint
      FROM batch WHERE event_type = 'charge' AND payload->>'status' = 'approved'
    UNION ALL
    SELECT payload->>'merchant_id', 'decline_reasons', payload->>'decline_code', 1
      FROM batch WHERE event_type = 'charge' AND payload->>'status' = 'declined'
), applied AS (
    INSERT INTO analytics_counters (merchant_id, metric, dimension, value)
    SELECT merchant_id, metric, dimension, sum(delta) FROM increments GROUP BY 1, 2, 3
    ON CONFLICT (merchant_id, metric, dimension) DO UPDATE SET value = analytics_counters.value + EXCLUDED.value
)
SELECT count(*) FROM batch
"""


async def relay_batch(pool: asyncpg.Pool, batch_size: int) -> int:
    count = await pool.fetchval(RELAY_SQL, batch_size)
    return int(count or 0)


async def oldest_unrelayed_age(pool: asyncpg.Pool) -> float:
    """Seconds since the oldest waiting event was written, 0 when none waits (by the primary key's order, which
    is the relay's: no scan of a long outbox)."""
    age = await pool.fetchval(
        "SELECT extract(epoch FROM clock_timestamp() - created_at) FROM outbox ORDER BY id LIMIT 1"
    )
    return max(0.0, float(age)) if age is not None else 0.0


async def counters(pool: asyncpg.Pool, merchant_id: str | None) -> list[tuple[str, str, int]]:
    rows = await pool.fetch(
        """SELECT metric, dimension, sum(value)::bigint AS value FROM analytics_counters
           WHERE $1::text IS NULL OR merchant_id = $1 GROUP BY metric, dimension""",
        merchant_id,
    )
    return [(r["metric"], r["dimension"], r["value"]) for r in rows]
