"""The edge middleware: trace context, token verification, rate limiting, metrics and access logs.

Pure ASGI (no response buffering) so the hot path pays for nothing it does not use. For every API request
it verifies the bearer token once, asks Redis once (the caller's budget, and whether its client was disabled:
`core.revocation`), and adds `RateLimit-*` and `traceparent` headers to
the response. Health and metrics endpoints skip auth and limits so probes and scrapes are never refused.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ghostpay.core import problems, revocation, telemetry
from ghostpay.core.errors import DomainError, RateLimited, Unauthorized
from ghostpay.core.runtime import Runtime
from ghostpay.core.settings import RateLimitedRole

OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
log = logging.getLogger("ghostpay.access")


def route_labels(scope: Scope, default_service: str) -> tuple[str, str]:
    """(service, route template) for metrics: never the raw path, which would explode label cardinality."""
    route: Any = scope.get("route")
    if route is None:
        return default_service, "<unmatched>"
    tags = getattr(route, "tags", None) or [default_service]
    return str(tags[0]), str(getattr(route, "path", "<unmatched>"))


class EdgeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime: Runtime = scope["app"].state.runtime
        started = time.perf_counter()
        headers = Headers(scope=scope)
        trace_id, traceparent = telemetry.trace_from_traceparent(headers.get("traceparent"))
        telemetry.trace_id_var.set(trace_id)
        extra_headers = {"traceparent": traceparent}
        status_holder = [500]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                MutableHeaders(scope=message).update(extra_headers)
            await send(message)

        try:
            if scope["path"] not in OPS_PATHS:
                refusal = await self._admit(scope, headers, runtime, extra_headers)
                if refusal is not None:
                    await refusal(scope, receive, send_with_headers)
                    return
            await self.app(scope, receive, send_with_headers)
        finally:
            self._record(scope, runtime, status_holder[0], time.perf_counter() - started)

    async def _admit(self, scope: Scope, headers: Headers, runtime: Runtime, extra_headers: dict[str, str]) -> Any:
        """Verify the token and spend one unit of the caller's budget; a response if refused, else None."""
        # This request's own copy: never write the caller into a state dict a server may share between requests.
        state = scope["state"] = dict(scope.get("state") or {})
        role: RateLimitedRole = "anonymous"
        bucket = f"ip:{(scope.get('client') or ('unknown', 0))[0]}"
        revocation_key = None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if token and scheme.lower() == "bearer":
            try:
                principal = await runtime.verifier.verify(token.strip())
            except Unauthorized as exc:
                state["auth_error"] = exc
            else:
                state["principal"] = principal
                role, bucket = principal.role, f"client:{principal.client_id}"
                revocation_key = revocation.marker_key(principal.client_id)
        policy = runtime.settings.rate_limits[role]
        try:
            decision = await runtime.limiter.check(bucket, policy, revocation_key)
        except DomainError as exc:
            return problems.from_domain_error(exc)
        extra_headers.update(decision.headers())
        if decision.revoked:  # checked in the same Redis round trip as the budget
            return problems.from_domain_error(Unauthorized("The bearer token's client has been disabled."))
        if decision.allowed:
            return None
        telemetry.RATE_LIMITED.labels(role=role).inc()
        return problems.from_domain_error(
            RateLimited(
                f"Rate limit of {policy.requests_per_second:g}/s (burst {policy.burst}) exceeded; "
                f"retry in {decision.retry_after_seconds} s."
            )
        )

    @staticmethod
    def _record(scope: Scope, runtime: Runtime, status: int, seconds: float) -> None:
        service, route = route_labels(scope, runtime.service_name)
        method = scope["method"]
        telemetry.HTTP_REQUESTS.labels(service, route, method, str(status), runtime.settings.version).inc()
        telemetry.HTTP_DURATION.labels(service, route, method).observe(seconds)
        if scope["path"] not in OPS_PATHS:
            log.info(
                "%s %s %s",
                method,
                route,
                status,
                extra={
                    "service": service,
                    "route": route,
                    "method": method,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )
