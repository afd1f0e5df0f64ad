"""PostgreSQL going away under a running service: every request that needs it gets a 503 problem at once (not a
500, not a wait), and the service recovers by itself when PostgreSQL is back — what the disruption suite's
PostgreSQL restart on kind measures with real pods (tests/kind/test_chaos.py).

The service reaches the test server through a TCP proxy on 127.0.0.1 that the test can cut (tests/support/pgproxy.py):
it drops every open connection and stops listening (new connections are refused), as a restarting PostgreSQL does.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ghostpay.core import db
from tests.conftest import in_process_api, make_settings
from tests.support.pgproxy import CuttableProxy


async def test_a_postgresql_outage_answers_503_at_once_and_the_service_recovers(
    database_url: str, servers: object, keys_dir: Path
) -> None:
    url = urlsplit(database_url)
    socket_path = f"{parse_qs(url.query)['host'][0]}/.s.PGSQL.5432"
    proxy = CuttableProxy(socket_path)
    await proxy.restore()
    via_proxy = f"postgresql://postgres@127.0.0.1:{proxy.port}{url.path}"
    settings = make_settings(via_proxy, servers.redis_url, keys_dir)  # type: ignore[attr-defined]
    async with in_process_api(settings) as api:
        merchant = await api.merchant()
        before = await api.issue_card(merchant["headers"])

        await proxy.cut()
        started = time.monotonic()
        charge = {"card_id": before["card_id"], "amount": 100, "currency": "USD"}
        keyed = {**merchant["headers"], "Idempotency-Key": "outage-1"}
        answers = [await api.http.post("/charges", json=charge, headers=keyed) for _ in range(3)]
        answers.append(await api.http.get(f"/cards/{before['card_id']}", headers=merchant["headers"]))
        waited = time.monotonic() - started
        print(f"\n4 requests in the outage answered in {waited:.2f} s (connect timeout {db.CONNECT_TIMEOUT_SECONDS} s)")
        assert [a.status_code for a in answers] == [503] * 4, [a.text for a in answers]
        problem = answers[0].json()
        assert answers[0].headers["content-type"].startswith("application/problem+json")
        assert problem["code"] == "unavailable" and answers[0].headers["Retry-After"] == "1"
        ready = await api.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["postgres"] != "ok"

        await proxy.restore()
        # The pool reconnects by itself: the same charge, retried with its key, is charged exactly once.
        retried = await api.http.post("/charges", json=charge, headers=keyed)
        assert retried.status_code == 201 and retried.json()["status"] == "approved", retried.text
        again = await api.http.post("/charges", json=charge, headers=keyed)
        assert again.json()["charge_id"] == retried.json()["charge_id"]
        assert (await api.http.get("/readyz")).status_code == 200
        await proxy.cut()
