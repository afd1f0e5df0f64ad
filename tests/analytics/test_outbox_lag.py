"""`ghostpay_outbox_oldest_unrelayed_age_seconds`: the age of the oldest event waiting in the outbox, 0 when the
relay has caught up (the GhostPayOutboxLag alert reads it). On a database of its own, so the session's running
relay does not drain the events the test writes."""

from __future__ import annotations

import asyncpg
from prometheus_client import REGISTRY

from ghostpay.analytics import service, store
from tests.support.servers import Servers, fresh_database


def _lag() -> float | None:
    return REGISTRY.get_sample_value("ghostpay_outbox_oldest_unrelayed_age_seconds")


async def test_outbox_lag_is_the_oldest_waiting_events_age(servers: Servers) -> None:
    pool = await asyncpg.create_pool(await fresh_database(servers.database_url, "gp_outbox_lag"), min_size=1)
    try:
        await service.measure_lag(pool)
        assert _lag() == 0  # an empty outbox
        await pool.execute(
            """INSERT INTO outbox (event_type, payload, created_at) VALUES
               ('card_issued', '{"merchant_id": "m"}', now() - interval '10 minutes'),
               ('card_issued', '{"merchant_id": "m"}', now())"""
        )
        await service.measure_lag(pool)
        assert 600 <= (_lag() or 0) < 3600
        assert await store.relay_batch(pool, 10) == 2
        await service.measure_lag(pool)
        assert _lag() == 0
    finally:
        await pool.close()
