"""The composition root: builds the FastAPI app for one service, or for all four (`ghostpay dev`).

Called by the CLI and by tests. Each service contributes its router and, where it needs one, a start-up
step; the core contributes the edge middleware, the problem handlers and the operations routes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Literal

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry.sdk.trace import TracerProvider
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import ghostpay
from ghostpay.analytics import api as analytics_api
from ghostpay.analytics import service as analytics_service
from ghostpay.auth import api as auth_api
from ghostpay.auth import service as auth_service
from ghostpay.cards import api as cards_api
from ghostpay.cards import service as cards_service
from ghostpay.charges import api as charges_api
from ghostpay.core import faults, lean_route, ops, problems, tracing
from ghostpay.core.edge import EdgeMiddleware
from ghostpay.core.runtime import Runtime, open_runtime
from ghostpay.core.settings import Settings

# FastAPI's own OpenTelemetry off: requests are traced by `core.tracing` into the provider it is given, and FastAPI
# would otherwise add its spans and metrics beside those whenever a global provider is set (`opentelemetry-instrument`),
# and look the global providers up on every request to find out (a few µs each).
NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
ServiceName = Literal["auth", "cards", "charges", "analytics"]
ALL_SERVICES: tuple[ServiceName, ...] = ("auth", "cards", "charges", "analytics")
_ROUTERS = {
    "auth": auth_api.router,
    "cards": cards_api.router,
    "charges": charges_api.router,
    "analytics": analytics_api.router,
}


async def _start_services(runtime: Runtime, services: Iterable[ServiceName], tasks: list[asyncio.Task[None]]) -> None:
    """Each service's start-up steps; background loops go into `tasks` (so a failed start still stops them)."""
    settings = runtime.settings
    tasks.append(asyncio.create_task(runtime.keys.run(), name="key-refresh"))
    if settings.fault == "crash-after-start":
        tasks.append(asyncio.create_task(faults.crash_later(settings), name="fault-crash"))
    if "auth" in services:
        auth_service.open_hasher(runtime)
        tasks.append(asyncio.create_task(auth_service.reseed_markers(runtime), name="revocation-reseed"))
    if "auth" in services and settings.admin_client_id and settings.admin_client_secret:
        await auth_service.bootstrap_admin(
            runtime, settings.admin_client_id, settings.admin_client_secret.get_secret_value()
        )
    if "cards" in services:
        await cards_service.open_keys(runtime)
    if "analytics" in services:
        tasks.append(asyncio.create_task(analytics_service.run_relay(runtime), name="outbox-relay"))


def create_app(
    settings: Settings,
    services: Iterable[ServiceName] = ALL_SERVICES,
    metrics_route: bool = True,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The app serving `services`; `metrics_route` False leaves `/metrics` out (`ghostpay serve` serves the metrics
    on a port of their own). With `tracer_provider` (`tracing.provider_from_environment`), requests and their
    database, Redis and httpx calls are traced into it; without one nothing is instrumented."""
    chosen = tuple(services)
    service_name = chosen[0] if len(chosen) == 1 else "ghostpay"
    undo_tracing: Callable[[], None] | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_runtime(settings, service_name)
        app.state.runtime = runtime
        tasks: list[asyncio.Task[None]] = []
        try:
            with tracing.untraced():  # start-up steps and the background loops: only requests make traces
                await _start_services(runtime, chosen, tasks)
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runtime.close()
            if tracer_provider is not None and undo_tracing is not None:
                undo_tracing()
                tracer_provider.shutdown()  # exports what is still batched

    app = FastAPI(
        title="GhostPay",
        version=ghostpay.__version__,
        summary="Single-use virtual cards, charged exactly once.",
        lifespan=lifespan,
        redirect_slashes=False,  # `/cards/` is no route: a 404 problem, not a redirect clients may not follow
        telemetry=NO_NATIVE_TELEMETRY,
    )
    service_routers = [_ROUTERS[name] for name in ALL_SERVICES if name in chosen]
    ops_routers = [ops.router, *([ops.metrics_router] if metrics_route else [])]
    problems.install(app, [*ops_routers, *service_routers])
    app.add_middleware(EdgeMiddleware, routes=[route for r in (*ops_routers, *service_routers) for route in r.routes])
    if settings.trusted_proxies:
        # Outside the edge, so its per-address budget keys on the client a trusted proxy names, not on the proxy.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=[str(net) for net in settings.trusted_proxies])
    for router in ops_routers:
        app.include_router(router)
    for router in service_routers:
        lean_route.include(app, router, responses=problems.documented(401, 403, 404, 413, 422, 429))
    if tracer_provider is not None:
        # The server span wraps the whole middleware stack, so the edge's Redis call is inside it.
        undo_tracing = tracing.instrument(app, tracer_provider)
    return app
