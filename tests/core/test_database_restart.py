"""PostgreSQL restarting under concurrent requests (issue 12, the disruption suite's scenario 6, without kind): every
answer is a success or a 503 problem, never a 500, and the service recovers by itself.

A restart ends each backend with an unsolicited FATAL message ("terminating connection due to administrator
command", SQLSTATE 57P01) and then closes its connection. A pooled connection that has read the message but not
yet the close looks open to the pool, and asyncpg's protocol is left waiting for a ReadyForQuery that never comes:
the next query on it fails at once with `InternalClientError: cannot switch to state 12; another operation (2) is
in progress` — what two requests answered as a 500 `internal_error` in the kind run. The tests below make that
moment as long as they need with the proxy's `hold_closes()` and kill the service's backends with
`pg_terminate_backend`, which sends each of them the same FATAL a fast shutdown does.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx

from tests.conftest import Api, in_process_api, make_settings
from tests.support.pgproxy import CuttableProxy

APPLICATION = "ghostpay-restart-test"  # the service's backends, so the test ends those and no other
POOL_MAX = 6
BURST = 3 * POOL_MAX  # more requests at once than the pool has connections: every pooled connection is taken
SUCCESS = {200, 201}


async def _proxied_settings(database_url: str, servers: Any, keys_dir: Path) -> tuple[CuttableProxy, Any]:
    url = urlsplit(database_url)
    proxy = CuttableProxy(f"{parse_qs(url.query)['host'][0]}/.s.PGSQL.5432")
    await proxy.restore()
    via_proxy = f"postgresql://postgres@127.0.0.1:{proxy.port}{url.path}?application_name={APPLICATION}"
    settings = make_settings(
        via_proxy,
        servers.redis_url,
        keys_dir,
        db_pool_min=POOL_MAX,
        db_pool_max=POOL_MAX,
        analytics_relay_interval_seconds=3600,  # no background query in flight when the backends are ended
    )
    return proxy, settings


async def _end_backends(database_url: str) -> int:
    """What a fast shutdown does to each of the service's backends: FATAL 57P01, then the end of the connection."""
    conn = await asyncpg.connect(database_url)
    try:
        ended: int = await conn.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            APPLICATION,
        )
    finally:
        await conn.close()
    return ended


def _requests(api: Api, merchant: dict[str, Any], cards: list[dict[str, Any]]) -> list[Any]:
    """One of each thing the kind traffic does per card (token, card, charge, read), as coroutines to run at once."""
    headers = merchant["headers"]
    credentials = {"client_id": merchant["client_id"], "client_secret": merchant["client_secret"]}
    made: list[Any] = []
    for n, card in enumerate(cards):
        charge = {"card_id": card["card_id"], "amount": 100, "currency": "USD"}
        keyed = {**headers, "Idempotency-Key": f"restart-{card['card_id']}"}
        made.append(api.http.post("/charges", json=charge, headers=keyed))
        made.append(api.http.get(f"/cards/{card['card_id']}", headers=headers))
        made.append(api.http.post("/cards", json={"user_id": "u", "amount": 500, "currency": "USD"}, headers=headers))
        if n % 3 == 0:
            made.append(api.http.post("/auth/token", json=credentials))
    return made


async def _answers(requests: list[Any]) -> list[httpx.Response | BaseException]:
    """The requests run at once; an error the app let out (a 500; the in-process client raises it) is kept."""
    return list(await asyncio.gather(*requests, return_exceptions=True))


def _not_success_or_503(answers: list[httpx.Response | BaseException]) -> list[str]:
    """Answers that are neither a success nor the 503 `unavailable` problem a client retries."""
    wrong: list[str] = []
    for a in answers:
        if isinstance(a, BaseException):
            wrong.append(f"500: {type(a).__name__}: {a}")
        elif a.status_code not in SUCCESS and not (
            a.status_code == 503 and a.json().get("code") == "unavailable" and a.headers.get("Retry-After")
        ):
            wrong.append(f"{a.request.method} {a.request.url.path}: {a.status_code} {a.text[:200]}")
    return wrong


def _statuses(answers: list[httpx.Response | BaseException]) -> list[int]:
    return sorted(500 if isinstance(a, BaseException) else a.status_code for a in answers)


def _succeeded(answers: list[httpx.Response | BaseException]) -> list[httpx.Response]:
    """The answers, all successes (asserted)."""
    good = [a for a in answers if isinstance(a, httpx.Response) and a.status_code in SUCCESS]
    assert len(good) == len(answers), _statuses(answers)
    return good


async def test_connections_told_of_a_restart_answer_503_never_500_and_leave_the_pool(
    database_url: str, servers: Any, keys_dir: Path
) -> None:
    proxy, settings = await _proxied_settings(database_url, servers, keys_dir)
    try:
        async with in_process_api(settings) as api:
            merchant = await api.merchant()
            cards = [await api.issue_card(merchant["headers"]) for _ in range(BURST // 3)]
            await asyncio.gather(*(api.http.get(f"/cards/{c['card_id']}", headers=merchant["headers"]) for c in cards))

            proxy.hold_closes()  # each pooled connection reads its FATAL; its end has not arrived yet
            await proxy.wait_held(await _end_backends(database_url))
            await asyncio.sleep(0.05)  # a few turns of the event loop: the service has read what was passed on
            started = time.monotonic()
            burst = await _answers(_requests(api, merchant, cards))
            print(f"\n{len(burst)} requests on told-off connections answered in {time.monotonic() - started:.2f} s")
            print("statuses:", _statuses(burst))
            assert _not_success_or_503(burst) == []

            # The told-off connections were thrown away, not put back: with their ends still held open, every
            # request now succeeds on new connections (and each charge of the burst, retried with its key, once).
            after = _succeeded(await _answers(_requests(api, merchant, cards)))
            charged = [a.json() for a in after if a.request.url.path == "/charges"]
            assert all(c["status"] == "approved" for c in charged)
            first = {
                a.json()["charge_id"]
                for a in burst
                if isinstance(a, httpx.Response) and a.request.url.path == "/charges" and a.status_code == 201
            }
            assert first <= {c["charge_id"] for c in charged}
            proxy.let_close()  # before the app closes its pool: each close waits for its connection's end
    finally:
        proxy.let_close()
        await proxy.cut()


async def test_postgresql_restarted_under_concurrent_requests_answers_successes_or_503s_and_recovers(
    database_url: str, servers: Any, keys_dir: Path
) -> None:
    """The restart as it happens, without a held close: the backends end while requests are in flight, new
    connections are refused for a moment, then PostgreSQL is back."""
    proxy, settings = await _proxied_settings(database_url, servers, keys_dir)
    try:
        async with in_process_api(settings) as api:
            merchant = await api.merchant()
            cards = [await api.issue_card(merchant["headers"]) for _ in range(BURST // 3)]
            pending = [asyncio.ensure_future(r) for r in _requests(api, merchant, cards)]
            await asyncio.sleep(0)  # the requests have started; end the backends under them
            assert await _end_backends(database_url) >= 1
            await proxy.cut()
            during = await _answers(pending)
            during += await _answers(_requests(api, merchant, cards))  # PostgreSQL away: 503s, at once
            print("\nstatuses during the restart:", _statuses(during))
            assert _not_success_or_503(during) == []

            await proxy.restore()
            _succeeded(await _answers(_requests(api, merchant, cards)))
            assert (await api.http.get("/readyz")).status_code == 200
    finally:
        await proxy.cut()
