"""Observability: metrics named as in the contract and labelled by route template; health and readiness."""

from __future__ import annotations

from ghostpay.core.settings import Settings
from tests.conftest import Api, in_process_api


async def test_metrics_use_route_templates_not_raw_paths(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    await api.http.get(f"/cards/{card['card_id']}", headers=merchant["headers"])
    await api.http.post(
        "/charges", json={"card_id": card["card_id"], "amount": 1, "currency": "USD"}, headers=merchant["headers"]
    )
    text = (await api.http.get("/metrics")).text
    assert (
        'ghostpay_http_requests_total{method="GET",route="/cards/{card_id}",service="cards",status="200",version="0.1.0"}'
        in text
    )
    assert card["card_id"] not in text
    assert 'ghostpay_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/charges",' in text
    for name in (
        "ghostpay_cards_issued_total",
        'ghostpay_charges_total{decline_code="",status="approved"}',
        "ghostpay_rate_limited_total",
    ):
        assert name in text
    for role in ("admin", "merchant", "user", "anonymous"):  # every series exists before its first 429
        assert f'ghostpay_rate_limited_total{{role="{role}"}}' in text
    # The runtime points the key-age gauge at its KeyCache: a real age, not the NaN of a process without keys.
    [age] = [line.split()[1] for line in text.splitlines() if line.startswith("ghostpay_signing_key_age_seconds ")]
    assert float(age) >= 0


async def test_health_and_readiness(api: Api) -> None:
    assert (await api.http.get("/healthz")).status_code == 200
    ready = await api.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_responses_carry_a_w3c_traceparent(api: Api) -> None:
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = await api.http.get("/healthz", headers={"traceparent": incoming})
    assert response.headers["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")



async def test_responses_name_the_version_that_answered(settings: Settings) -> None:
    """`GhostPay-Version` (Settings.version, GHOSTPAY_VERSION) on every answer: health, API, and refusals alike."""
    async with in_process_api(settings.model_copy(update={"version": "9.9.9-canary"})) as api:
        merchant = await api.merchant()
        answers = [
            await api.http.get("/healthz"),
            await api.http.get("/cards/nope", headers=merchant["headers"]),
            await api.http.get("/cards/nope"),  # refused by the edge (401) before any route
        ]
    assert [a.headers.get("GhostPay-Version") for a in answers] == ["9.9.9-canary"] * 3
