"""Analytics: the summary follows the outbox within seconds, per merchant, and is refused to users."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Api


async def _summary_when(api: Api, headers: dict[str, str], ready: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for _ in range(50):  # bounded: up to 5 s, the contract's promise
        summary = (await api.http.get("/analytics/summary", headers=headers)).json()
        if ready(summary):
            return summary
        await asyncio.sleep(0.1)
    return summary


async def test_a_merchants_summary_counts_its_own_activity(api: Api) -> None:
    merchant, other = await api.merchant(), await api.merchant()
    usd = await api.issue_card(merchant["headers"], amount=700)
    jpy = await api.issue_card(merchant["headers"], amount=5000, currency="JPY")
    await api.issue_card(other["headers"])
    for card, amount, currency in [(usd, 700, "USD"), (usd, 1, "USD"), (jpy, 6000, "JPY"), (jpy, 4000, "JPY")]:
        await api.http.post(
            "/charges",
            json={"card_id": card["card_id"], "amount": amount, "currency": currency},
            headers=merchant["headers"],
        )
    expected = {
        "cards_issued": 2,
        "charges": {"approved": 2, "declined": 2},
        "volume": {"USD": 700, "JPY": 4000},
        "decline_reasons": {
            "card_used": 1,
            "card_expired": 0,
            "card_closed": 0,
            "amount_exceeds_limit": 1,
            "currency_mismatch": 0,
        },
    }
    assert await _summary_when(api, merchant["headers"], lambda s: s == expected) == expected
    other_summary = await _summary_when(api, other["headers"], lambda s: s["cards_issued"] == 1)
    assert other_summary["charges"] == {"approved": 0, "declined": 0} and other_summary["volume"] == {}


async def test_the_admin_summary_covers_every_merchant(api: Api) -> None:
    admin = await api.admin()
    before = (await api.http.get("/analytics/summary", headers=admin)).json()["cards_issued"]
    merchant = await api.merchant()
    await api.issue_card(merchant["headers"])
    after = await _summary_when(api, admin, lambda s: s["cards_issued"] >= before + 1)
    assert after["cards_issued"] >= before + 1


async def test_users_may_not_read_analytics(api: Api) -> None:
    user = await api.user()
    response = await api.http.get("/analytics/summary", headers=user["headers"])
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
