"""Rate limits in Redis: per-client budgets with RateLimit-* headers, 429 problems with Retry-After, one budget
shared by every app instance, and what happens when Redis is down (fail open by default, closed on request)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghostpay.core import telemetry
from ghostpay.core.ratelimit import decision_from_script
from ghostpay.core.settings import RateLimit, Settings
from tests.conftest import GENEROUS_LIMITS, in_process_api, make_settings

TIGHT = {**GENEROUS_LIMITS, "merchant": {"requestsPerSecond": 1, "burst": 3}}


@pytest.fixture
def tight_settings(database_url: str, servers: object, keys_dir: Path) -> Settings:
    return make_settings(database_url, servers.redis_url, keys_dir, rate_limits=TIGHT)  # type: ignore[attr-defined]


async def test_a_client_gets_its_burst_then_429(tight_settings: Settings) -> None:
    async with in_process_api(tight_settings) as api:
        merchant = await api.merchant()
        before = telemetry.RATE_LIMITED.labels(role="merchant")._value.get()
        responses = [await api.http.get("/cards", headers=merchant["headers"]) for _ in range(4)]
        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        assert [r.headers["RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
        assert all(r.headers["RateLimit-Limit"] == "3" for r in responses)
        assert all(int(r.headers["RateLimit-Reset"]) >= 0 for r in responses)
        limited = responses[-1]
        assert limited.headers["content-type"].startswith("application/problem+json")
        assert limited.json()["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
        assert telemetry.RATE_LIMITED.labels(role="merchant")._value.get() == before + 1

        other = await api.merchant()  # budgets are per client
        assert (await api.http.get("/cards", headers=other["headers"])).status_code == 200


async def test_two_app_instances_share_one_budget(tight_settings: Settings) -> None:
    async with in_process_api(tight_settings) as first, in_process_api(tight_settings) as second:
        merchant = await first.merchant()
        codes = [
            (await (first if i % 2 else second).http.get("/cards", headers=merchant["headers"])).status_code
            for i in range(4)
        ]
        assert codes == [200, 200, 200, 429]


async def test_requests_without_a_token_are_limited_by_address(
    database_url: str, servers: object, keys_dir: Path
) -> None:
    limits = {**GENEROUS_LIMITS, "anonymous": {"requestsPerSecond": 1, "burst": 2}}
    settings = make_settings(database_url, servers.redis_url, keys_dir, rate_limits=limits)  # type: ignore[attr-defined]
    async with in_process_api(settings, client_address="127.0.0.99") as api:
        codes = [(await api.http.get("/cards")).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        assert (await api.http.get("/healthz")).status_code == 200  # probes are never limited


@pytest.mark.parametrize(("fail_closed", "expected"), [(False, 200), (True, 503)])
async def test_when_redis_is_down(
    database_url: str, servers: object, keys_dir: Path, fail_closed: bool, expected: int
) -> None:
    working = make_settings(database_url, servers.redis_url, keys_dir)  # type: ignore[attr-defined]
    async with in_process_api(working) as api:
        merchant = await api.merchant()
    broken = make_settings(
        database_url, "unix:///tmp/gp-no-such-redis.sock", keys_dir, rate_limit_fail_closed=fail_closed
    )
    async with in_process_api(broken) as api:
        errors_before = telemetry.RATE_LIMITER_ERRORS._value.get()
        response = await api.http.get("/cards", headers=merchant["headers"])
        assert response.status_code == expected
        assert telemetry.RATE_LIMITER_ERRORS._value.get() == errors_before + 1
        ready = await api.http.get("/readyz")
        if fail_closed:
            assert ready.status_code == 503 and ready.headers["content-type"].startswith("application/problem+json")
            problem = ready.json()
            assert problem["code"] == "not_ready" and problem["status"] == 503 and "redis" in problem["detail"]
        else:
            # Failing open, the pod stays in its Service: an outage of the one Redis must not take every pod out
            # of every Service (the disruption suite's Redis restart), yet the answer says what is missing.
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        checks = ready.json()["checks"]
        assert checks["redis"] != "ok" and checks["postgres"] == "ok"


def test_the_script_reply_becomes_headers() -> None:
    policy = RateLimit(requests_per_second=2, burst=10)
    allowed = decision_from_script([1, 7, 0, 1_500_000], policy).headers()
    assert allowed == {"RateLimit-Limit": "10", "RateLimit-Remaining": "7", "RateLimit-Reset": "2"}
    refused = decision_from_script([0, 0, 400_000, 5_000_000], policy).headers()
    assert refused["Retry-After"] == "1" and refused["RateLimit-Remaining"] == "0"
