"""Operations routes: `/healthz` and `/readyz` (every process), and `/metrics` (`metrics_router`: on the API port
in `ghostpay dev` only; `ghostpay serve` answers scrapes on a port of their own, see `cli.serve`)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ghostpay.core import faults, problems, redis_client
from ghostpay.core.deps import RuntimeDep
from ghostpay.core.runtime import Runtime

router = APIRouter()
metrics_router = APIRouter()
_PROBE_TIMEOUT = 2.0


@router.get("/healthz", summary="Liveness: the process is running")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _probe(name: str, check: object) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check, _PROBE_TIMEOUT)  # type: ignore[arg-type]
    except Exception as exc:
        return name, f"unavailable ({type(exc).__name__})"
    return name, "ok"


async def _ping(runtime: Runtime) -> object:
    """Redis's answer, within the deadline every Redis call has (`core.redis_client`; 0.5 s by default, within the
    probe's own)."""
    async with redis_client.deadline(runtime.settings.redis_timeout_seconds):
        return await runtime.redis.ping()


@router.get(
    "/readyz",
    summary="Readiness: PostgreSQL answers (and Redis, when the rate limiter fails closed)",
    description="503 `not_ready` (a problem document whose `checks` say which dependency does not answer). Redis "
    "is reported in `checks` either way, but with the rate limiter failing open (the default) a Redis outage "
    "does not make the process unready: it answers 200 with `status` `degraded`, and requests go through without "
    "limits, as the policy says.",
    responses=problems.documented(503),
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks = dict(
        await asyncio.gather(
            _probe("postgres", runtime.pool.fetchval("SELECT 1")),
            _probe("redis", _ping(runtime)),
        )
    )
    if faults.blocks_readiness(runtime.settings):
        checks["fault"] = "never-ready (GHOSTPAY_FAULT)"
    # Failing open, requests are served without Redis: were Redis to decide readiness, an outage of the one Redis
    # would take every pod out of its Service at once, and refuse every request the policy lets through.
    optional = () if runtime.settings.rate_limit_fail_closed else ("redis",)
    failing = [name for name, state in checks.items() if state != "ok" and name not in optional]
    if failing:
        detail = f"Not ready: {', '.join(failing)} does not answer."
        return problems.problem_response(503, "not_ready", "Service Unavailable", detail, checks=checks)
    status = "ready" if all(state == "ok" for state in checks.values()) else "degraded"
    return JSONResponse({"status": status, "checks": checks})


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="`ghostpay dev` serves it here; `ghostpay serve` on its own port (`GHOSTPAY_METRICS_PORT`, 9090), "
    "which the operator's Services do not expose, and answers 404 here.",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
