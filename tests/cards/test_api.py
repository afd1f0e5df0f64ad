"""Cards through the REST API: issuance fields, validation, expiry, closing, and cursor pagination."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from ghostpay.cards import pan
from tests.conftest import Api


async def test_an_issued_card_carries_its_number_once(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"], user_id="u-1", amount=2500, currency="eur")
    assert card["card_id"].startswith("card_")
    assert card["status"] == "active" and card["currency"] == "EUR" and card["amount"] == 2500
    assert card["merchant_id"] == merchant["client_id"] and card["user_id"] == "u-1"
    assert len(card["pan"]) == 16 and pan.is_luhn_valid(card["pan"]) and card["pan"].startswith("400000")
    assert card["last4"] == card["pan"][-4:] and len(card["cvv"]) == 3
    expires = datetime.fromisoformat(card["expires_at"])
    assert (card["exp_month"], card["exp_year"]) == (expires.month, expires.year)
    assert card["expires_at"].endswith("Z") and card["created_at"].endswith("Z")

    shown = (await api.http.get(f"/cards/{card['card_id']}", headers=merchant["headers"])).json()
    assert "pan" not in shown and "cvv" not in shown
    assert shown == {k: v for k, v in card.items() if k not in ("pan", "cvv")}


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 10.5}, "amount"),
        ({"amount": "100"}, "amount"),
        ({"amount": 10**15}, "body"),
        ({"currency": "US"}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"currency": "ZZZ"}, "currency"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": None}, "user_id"),
        ({"expires_in_seconds": 0}, "expires_in_seconds"),
    ],
)
async def test_invalid_cards_are_refused_with_a_problem(api: Api, body: dict[str, object], bad_field: str) -> None:
    merchant = await api.merchant()
    payload = {"user_id": "u-1", "amount": 100, "currency": "USD", **body}
    response = await api.http.post("/cards", json=payload, headers=merchant["headers"])
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert any(bad_field in err["loc"] for err in problem["errors"]), problem
    listed = (await api.http.get("/cards", headers=merchant["headers"])).json()
    assert listed["data"] == []  # nothing was created


async def test_a_card_past_its_expiry_reads_expired_and_declines(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"], expires_in_seconds=1)
    await asyncio.sleep(1.3)
    shown = (await api.http.get(f"/cards/{card['card_id']}", headers=merchant["headers"])).json()
    assert shown["status"] == "expired"
    charge = await api.http.post(
        "/charges", json={"card_id": card["card_id"], "amount": 1, "currency": "USD"}, headers=merchant["headers"]
    )
    assert charge.status_code == 402 and charge.json()["decline_code"] == "card_expired"
    expired = (await api.http.get("/cards?status=expired", headers=merchant["headers"])).json()
    assert [c["card_id"] for c in expired["data"]] == [card["card_id"]]


async def test_closing_a_card_stops_charges(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    closed = await api.http.post(f"/cards/{card['card_id']}/close", headers=merchant["headers"])
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    again = await api.http.post(f"/cards/{card['card_id']}/close", headers=merchant["headers"])
    assert again.status_code == 200 and again.json()["status"] == "closed"
    charge = await api.http.post(
        "/charges", json={"card_id": card["card_id"], "amount": 1, "currency": "USD"}, headers=merchant["headers"]
    )
    assert charge.json()["decline_code"] == "card_closed"


async def test_a_used_card_cannot_be_closed(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    await api.http.post(
        "/charges", json={"card_id": card["card_id"], "amount": 1, "currency": "USD"}, headers=merchant["headers"]
    )
    response = await api.http.post(f"/cards/{card['card_id']}/close", headers=merchant["headers"])
    assert response.status_code == 409 and response.json()["code"] == "conflict"


async def test_pages_walk_every_card_once_newest_first(api: Api) -> None:
    merchant = await api.merchant()
    issued = [(await api.issue_card(merchant["headers"], user_id=f"walker-{i % 2}"))["card_id"] for i in range(7)]
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        page = (await api.http.get(f"/cards?limit=3{cursor}", headers=merchant["headers"])).json()
        seen += [c["card_id"] for c in page["data"]]
        if not page["has_more"]:
            break
        cursor = f"&starting_after={seen[-1]}"
    assert seen == list(reversed(issued))

    only_odd = (await api.http.get("/cards?user_id=walker-1&limit=100", headers=merchant["headers"])).json()
    assert [c["card_id"] for c in only_odd["data"]] == list(reversed(issued[1::2]))


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "status=lost", "starting_after=card_nope"])
async def test_bad_list_parameters_are_problems(api: Api, query: str) -> None:
    merchant = await api.merchant()
    response = await api.http.get(f"/cards?{query}", headers=merchant["headers"])
    assert response.status_code == 422 and response.json()["status"] == 422


async def test_finding_9_user_ids_name_platform_wide_cardholders(api: Api) -> None:
    """The model GhostPay follows (docs/api.md, Cardholders): a `user_id` is one cardholder across the whole
    platform, assigned by its admin. Every merchant issuing to it names the same person; the user sees all of its
    cards, whoever issued them, while each merchant still sees only the cards it issued."""
    user_id = f"holder_{id(api)}"
    first, second = await api.merchant(), await api.merchant()
    mine = await api.issue_card(first["headers"], user_id=user_id)
    theirs = await api.issue_card(second["headers"], user_id=user_id)
    holder = await api.user(user_id)

    seen = (await api.http.get("/cards", params={"user_id": user_id}, headers=holder["headers"])).json()["data"]
    assert {c["card_id"] for c in seen} == {mine["card_id"], theirs["card_id"]}
    by_first = (await api.http.get("/cards", params={"user_id": user_id}, headers=first["headers"])).json()["data"]
    assert [c["card_id"] for c in by_first] == [mine["card_id"]]
    assert (await api.http.get(f"/cards/{theirs['card_id']}", headers=first["headers"])).status_code == 404
    other_user = await api.user()
    assert (await api.http.get(f"/cards/{mine['card_id']}", headers=other_user["headers"])).status_code == 404
