"""Analytics rules: the outbox relay loop, and the summary a caller may see.

`run_relay` is started as a background task by the app when the analytics service runs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import asyncpg

from ghostpay.analytics import store
from ghostpay.core.runtime import Runtime
from ghostpay.core.telemetry import OUTBOX_OLDEST_AGE, OUTBOX_RELAYED
from ghostpay.core.tokens import Principal

log = logging.getLogger("ghostpay.analytics")
BATCH_SIZE = 500
DECLINE_CODES = ("card_used", "card_expired", "card_closed", "amount_exceeds_limit", "currency_mismatch")


@dataclass
class Summary:
    cards_issued: int = 0
    charges: dict[str, int] = field(default_factory=lambda: {"approved": 0, "declined": 0})
    volume: dict[str, int] = field(default_factory=dict)
    decline_reasons: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DECLINE_CODES, 0))


def summarize(counters: list[tuple[str, str, int]]) -> Summary:
    summary = Summary()
    for metric, dimension, value in counters:
        if metric == "cards_issued":
            summary.cards_issued += value
        elif metric in ("charges", "volume", "decline_reasons"):
            bucket: dict[str, int] = getattr(summary, metric)
            bucket[dimension] = bucket.get(dimension, 0) + value
    return summary


async def summary_for(runtime: Runtime, principal: Principal) -> Summary:
    """Admin: every merchant; merchant: its own (the API refuses users)."""
    merchant_id = principal.merchant_id if principal.role == "merchant" else None
    return summarize(await store.counters(runtime.pool, merchant_id))


async def relay_once(runtime: Runtime) -> int:
    """Drain the outbox until it is empty; returns how many events were applied."""
    total = 0
    while (count := await store.relay_batch(runtime.pool, BATCH_SIZE)) > 0:
        total += count
        OUTBOX_RELAYED.inc(count)
        if count < BATCH_SIZE:
            break
    return total


async def measure_lag(pool: asyncpg.Pool) -> None:
    """Set `ghostpay_outbox_oldest_unrelayed_age_seconds`; a failed query leaves the last value."""
    try:
        OUTBOX_OLDEST_AGE.set(await store.oldest_unrelayed_age(pool))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("outbox lag not measured (%s)", type(exc).__name__)


async def run_relay(runtime: Runtime) -> None:
    interval = runtime.settings.analytics_relay_interval_seconds
    while True:
        try:
            await relay_once(runtime)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep relaying after a database hiccup; events wait in the outbox
            log.warning("outbox relay failed (%s); retrying", type(exc).__name__)
            await asyncio.sleep(min(5.0, interval * 10))
        await measure_lag(runtime.pool)  # after a failed pass too: a stuck relay shows as a growing age
        await asyncio.sleep(interval)
