"""Rate limits in Redis: per-client budgets with RateLimit-* headers, 429 problems with Retry-After, one budget
shared by every app instance, and what happens when Redis is down (fail open by default, closed on request)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import redis.asyncio as aioredis

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


# --- the instance's live policy (issue 16): the operator writes it into Redis, each request reads it -------------


def _policy(merchant: dict[str, float], generation: int = 1) -> str:
    return json.dumps({"generation": generation, "limits": {**GENEROUS_LIMITS, "merchant": merchant}})


async def test_a_changed_policy_in_redis_applies_on_the_next_request(
    database_url: str, servers: object, keys_dir: Path
) -> None:
    """Issue 16: the limiter reads the caller's role's budget from the policy key in the same script call, so
    lowering or raising it takes effect on the very next request, with the process left running."""
    key = f"ghostpay:ratelimits:test:{secrets.token_hex(4)}"
    settings = make_settings(database_url, servers.redis_url, keys_dir, rate_limit_policy_key=key)  # type: ignore[attr-defined]
    redis = aioredis.from_url(settings.redis_url)
    try:
        async with in_process_api(settings) as api:
            merchant = await api.merchant()

            async def codes(n: int) -> list[int]:
                return [(await api.http.get("/cards", headers=merchant["headers"])).status_code for _ in range(n)]

            assert await codes(5) == [200] * 5  # no key: the process's own (generous) limits
            await redis.set(key, _policy({"requestsPerSecond": 0.01, "burst": 2}))
            responses = [await api.http.get("/cards", headers=merchant["headers"]) for _ in range(3)]
            assert [r.status_code for r in responses] == [200, 200, 429]
            assert responses[0].headers["RateLimit-Limit"] == "2"  # the headers tell the limit that applied
            assert "0.01/s (burst 2)" in responses[2].json()["detail"]

            await redis.set(key, _policy({"requestsPerSecond": 10000, "burst": 10000}, generation=2))
            assert await codes(5) == [200] * 5  # raised: lifted on the next request (the old debt forgiven)

            await redis.set(key, _policy({"requestsPerSecond": 0.01, "burst": 1}, generation=3))
            # lowered again to a burst of 1: what the last requests still owe fills it, so refused at once
            assert await codes(2) == [429, 429]
            await redis.delete(key)
            assert await codes(3) == [200] * 3  # the key lost: the process's defaults again
    finally:
        await redis.aclose()


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        json.dumps({"generation": 1}),
        json.dumps({"limits": {"merchant": {"requestsPerSecond": 0, "burst": 1}}}),
        json.dumps({"limits": {"user": {"requestsPerSecond": 0.01, "burst": 1}}}),  # no word on merchants
    ],
)
async def test_a_policy_that_names_no_budget_for_the_role_leaves_the_defaults(
    database_url: str, servers: object, keys_dir: Path, value: str
) -> None:
    key = f"ghostpay:ratelimits:test:{secrets.token_hex(4)}"
    settings = make_settings(database_url, servers.redis_url, keys_dir, rate_limit_policy_key=key)  # type: ignore[attr-defined]
    redis = aioredis.from_url(settings.redis_url)
    try:
        await redis.set(key, value)
        async with in_process_api(settings) as api:
            merchant = await api.merchant()
            responses = [await api.http.get("/cards", headers=merchant["headers"]) for _ in range(3)]
            assert [r.status_code for r in responses] == [200] * 3
            assert responses[0].headers["RateLimit-Limit"] == "10000"
    finally:
        await redis.delete(key)
        await redis.aclose()


def test_the_limiter_s_redis_client_parses_replies_with_hiredis() -> None:
    """Issue 15: redis-py's C reply parser (the `hiredis` extra) costs the charge path's one Redis command less CPU
    than its pure-Python one; redis-py falls back to the slower one silently when hiredis is missing."""
    from redis.asyncio.connection import DefaultParser
    from redis.utils import HIREDIS_AVAILABLE

    assert HIREDIS_AVAILABLE
    assert DefaultParser.__name__ == "_AsyncHiredisParser"
