"""Charges through the REST API: every decline code, partial amounts, idempotency keys, reading charges."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api


async def _charge(
    api: Api, headers: dict[str, str], card_id: str, amount: int = 500, currency: str = "USD", key: str | None = None
) -> Any:
    extra = {"Idempotency-Key": key} if key else {}
    return await api.http.post(
        "/charges", json={"card_id": card_id, "amount": amount, "currency": currency}, headers={**headers, **extra}
    )


async def test_an_approved_charge_uses_the_card(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"], amount=1000)
    response = await _charge(api, merchant["headers"], card["card_id"], amount=999)
    assert response.status_code == 201
    charge = response.json()
    assert charge["status"] == "approved" and charge["charge_id"].startswith("ch_")
    assert (charge["card_id"], charge["merchant_id"], charge["amount"], charge["currency"]) == (
        card["card_id"],
        merchant["client_id"],
        999,
        "USD",
    )
    shown = (await api.http.get(f"/cards/{card['card_id']}", headers=merchant["headers"])).json()
    assert shown["status"] == "used"


@pytest.mark.parametrize(
    ("amount", "currency", "decline_code"),
    [(1001, "USD", "amount_exceeds_limit"), (500, "EUR", "currency_mismatch")],
)
async def test_declines_are_recorded_and_leave_the_card_active(
    api: Api, amount: int, currency: str, decline_code: str
) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"], amount=1000)
    response = await _charge(api, merchant["headers"], card["card_id"], amount, currency)
    assert response.status_code == 402
    problem = response.json()
    assert problem["code"] == "card_declined" and problem["decline_code"] == decline_code
    recorded = (await api.http.get(f"/charges/{problem['charge_id']}", headers=merchant["headers"])).json()
    assert recorded["status"] == "declined" and recorded["decline_code"] == decline_code
    assert (await _charge(api, merchant["headers"], card["card_id"], 1000)).status_code == 201


async def test_a_second_charge_is_declined_card_used(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    assert (await _charge(api, merchant["headers"], card["card_id"])).status_code == 201
    second = await _charge(api, merchant["headers"], card["card_id"])
    assert second.status_code == 402 and second.json()["decline_code"] == "card_used"


async def test_an_unknown_card_is_404_and_records_nothing(api: Api) -> None:
    merchant = await api.merchant()
    response = await _charge(api, merchant["headers"], "card_doesnotexist")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    listed = (await api.http.get("/charges", headers=merchant["headers"])).json()
    assert listed["data"] == []


async def test_the_same_key_and_body_replays_the_first_response(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    first = await _charge(api, merchant["headers"], card["card_id"], key="order-1")
    replay = await _charge(api, merchant["headers"], card["card_id"], key="order-1")
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    listed = (await api.http.get(f"/charges?card_id={card['card_id']}", headers=merchant["headers"])).json()
    assert len(listed["data"]) == 1


async def test_a_replayed_decline_is_the_same_decline(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"], amount=100)
    first = await _charge(api, merchant["headers"], card["card_id"], amount=101, key="too-much")
    replay = await _charge(api, merchant["headers"], card["card_id"], amount=101, key="too-much")
    assert first.status_code == replay.status_code == 402
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"


async def test_a_key_reused_with_another_body_is_refused(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    await _charge(api, merchant["headers"], card["card_id"], amount=100, key="k")
    reused = await _charge(api, merchant["headers"], card["card_id"], amount=200, key="k")
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"


async def test_keys_are_scoped_to_the_caller(api: Api) -> None:
    first, second = await api.merchant(), await api.merchant()
    card_a = await api.issue_card(first["headers"])
    card_b = await api.issue_card(second["headers"])
    assert (await _charge(api, first["headers"], card_a["card_id"], key="shared")).status_code == 201
    assert (await _charge(api, second["headers"], card_b["card_id"], key="shared")).status_code == 201


async def test_an_oversized_key_is_refused(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    response = await _charge(api, merchant["headers"], card["card_id"], key="k" * 256)
    assert response.status_code == 422


@pytest.mark.parametrize("key", ["k" * 256, ""], ids=["too-long", "empty"])
async def test_a_bad_key_is_a_422_naming_the_header_and_charges_nothing(api: Api, key: str) -> None:
    """Issue 15 reads the key by hand (no Header parameter to solve): the 422 names it as the parameter did."""
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    body = {"card_id": card["card_id"], "amount": 500, "currency": "USD"}
    response = await api.http.post("/charges", json=body, headers={**merchant["headers"], "Idempotency-Key": key})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["loc"][:2] for error in response.json()["errors"]] == [["header", "Idempotency-Key"]]
    assert (await _charge(api, merchant["headers"], card["card_id"])).status_code == 201  # the card was not used


async def test_charges_list_by_card_and_paginate(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"], amount=100)
    ids = [(await _charge(api, merchant["headers"], card["card_id"], amount=101)).json()["charge_id"] for _ in range(3)]
    page = (await api.http.get(f"/charges?card_id={card['card_id']}&limit=2", headers=merchant["headers"])).json()
    assert page["has_more"] and [c["charge_id"] for c in page["data"]] == ids[::-1][:2]
    rest = (
        await api.http.get(
            f"/charges?card_id={card['card_id']}&limit=2&starting_after={ids[1]}", headers=merchant["headers"]
        )
    ).json()
    assert not rest["has_more"] and [c["charge_id"] for c in rest["data"]] == [ids[0]]


async def test_a_role_that_may_not_charge_is_refused_before_its_body_is_validated(api: Api) -> None:
    user = await api.user()
    invalid = await api.http.post("/charges", json={"card_id": 7}, headers=user["headers"])
    assert invalid.status_code == 403, invalid.text  # not a 422 that would describe the body to this caller
    assert invalid.json()["code"] == "forbidden"
    anonymous = await api.http.post("/charges", json={"card_id": 7})
    assert anonymous.status_code == 401, anonymous.text
