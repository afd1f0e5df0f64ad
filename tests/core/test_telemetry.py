"""Observability: metrics named as in the contract and labelled by route template, the operational ones beyond it
(monitoring/README.md); health and readiness."""

from __future__ import annotations

import jwt
from prometheus_client import CollectorRegistry

from ghostpay import __version__
from ghostpay.core import telemetry
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


def _samples(text: str, name: str) -> dict[str, float]:
    """{labels: value} of metric `name` in an exposition."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, _, value = line.rpartition(" ")
            found[series.removeprefix(name)] = float(value)
    return found


async def test_operational_metrics_beyond_the_contract(settings: Settings) -> None:
    """Pool in use/idle, the limiter's Redis latency, the active kid and the build, all read without a round trip
    of their own (scrape-time callbacks, and a histogram around the one the limiter makes anyway). The build info
    and the active kid are the process's, set by the app started last: this test starts its own."""
    async with in_process_api(settings) as api:
        await _check_operational_metrics(api)


async def _check_operational_metrics(api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    await api.http.post(
        "/charges", json={"card_id": card["card_id"], "amount": 1, "currency": "USD"}, headers=merchant["headers"]
    )
    text = (await api.http.get("/metrics")).text
    pool = _samples(text, "ghostpay_db_pool_connections")
    assert set(pool) == {'{state="in_use"}', '{state="idle"}'}
    assert pool['{state="in_use"}'] >= 0 and pool['{state="in_use"}'] + pool['{state="idle"}'] >= 1
    assert _samples(text, "ghostpay_db_pool_max_connections") == {"": 20.0}
    assert _samples(text, "ghostpay_rate_limiter_duration_seconds_count")[""] >= 3  # token, card, charge
    signing_kid = jwt.get_unverified_header(merchant["headers"]["Authorization"].split()[1])["kid"]
    assert _samples(text, "ghostpay_signing_key_info") == {f'{{kid="{signing_kid}"}}': 1.0}
    assert _samples(text, "ghostpay_build_info") == {f'{{release="{__version__}",version="{__version__}"}}': 1.0}
    assert "ghostpay_signing_key_max_age_seconds" not in text  # GHOSTPAY_SIGNING_KEY_MAX_AGE_SECONDS unset


async def test_approved_volume_is_counted_in_major_units_per_currency(api: Api) -> None:
    merchant = await api.merchant()

    def volume(text: str) -> dict[str, float]:
        return _samples(text, "ghostpay_charged_amount_total")

    before = volume((await api.http.get("/metrics")).text)
    for amount, currency in ((1999, "USD"), (500, "JPY")):
        card = await api.issue_card(merchant["headers"], amount=amount, currency=currency)
        body = {"card_id": card["card_id"], "amount": amount, "currency": currency}
        assert (await api.http.post("/charges", json=body, headers=merchant["headers"])).status_code == 201
        declined = await api.http.post("/charges", json=body, headers=merchant["headers"])  # card used: not counted
        assert declined.status_code == 402
    after = volume((await api.http.get("/metrics")).text)
    gained = {series: round(after[series] - before.get(series, 0.0), 6) for series in after}
    assert gained['{currency="USD"}'] == 19.99 and gained['{currency="JPY"}'] == 500.0


def test_the_key_max_age_is_exported_once_set() -> None:
    registry = CollectorRegistry()
    keys = telemetry.SigningKeyMetrics()
    registry.register(keys)
    assert registry.get_sample_value("ghostpay_signing_key_max_age_seconds") is None
    keys.max_age = 90000.0
    keys.active_kid = lambda: "ghostpay-jwt-3"
    assert registry.get_sample_value("ghostpay_signing_key_max_age_seconds") == 90000.0
    assert registry.get_sample_value("ghostpay_signing_key_info", {"kid": "ghostpay-jwt-3"}) == 1.0

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
