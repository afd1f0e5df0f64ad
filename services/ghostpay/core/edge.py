"""The edge middleware: trace context, token verification, rate limiting, body limits, metrics and access logs.

Pure ASGI (no response buffering) so the hot path pays for nothing it does not use. For every API request
it verifies the bearer token once, asks Redis once (the caller's budget, and whether its client was disabled:
`core.revocation`), and adds `RateLimit-*`, `traceparent` and `GhostPay-Version` (the release that answered,
`GHOSTPAY_VERSION`) headers to the response. Health and metrics endpoints skip auth and limits so probes and
scrapes are never refused. The response's `traceparent` (and the trace and span ids in the request's log lines)
are those of the OpenTelemetry server span when tracing is on (`core.tracing`), else the caller's W3C trace
continued by hand.

Before the app reads a byte of the body, a route that needs a caller gets its 401 here, and a Content-Length
over `GHOSTPAY_MAX_BODY_BYTES` its 413; a body without one (chunked) is cut off with a 413 as soon as what was
read passes the limit. A response sent before a large (or chunked) body was read to its end closes the
connection, so the server does not go on reading (and discarding) the rest.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ghostpay.core import problems, revocation, telemetry, tracing
from ghostpay.core.bodies import BodyTooLarge, LimitedBody, declared_length
from ghostpay.core.deps import admitted_roles, missing_principal, role_refused, route_needs_principal
from ghostpay.core.errors import DomainError, RateLimited, Unauthorized
from ghostpay.core.runtime import Runtime
from ghostpay.core.settings import RateLimitedRole

VERSION_HEADER = "GhostPay-Version"
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
log = logging.getLogger("ghostpay.access")


def route_labels(scope: Scope, default_service: str) -> tuple[str, str]:
    """(service, route template) for metrics: never the raw path, which would explode label cardinality."""
    route: Any = scope.get("route")
    if route is None:
        return default_service, "<unmatched>"
    tags = getattr(route, "tags", None) or [default_service]
    return str(tags[0]), str(getattr(route, "path", "<unmatched>"))


class GuardedRoutes:
    """Which requests reach a route that asks for the caller (an unknown path or method does not: a 404/405)."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        api_routes = [route for route in routes if isinstance(route, APIRoute)]
        self._routes = [(route, route_needs_principal(route)) for route in api_routes]
        # Only the `admits`-marked routes (the charge path): a caller's role is checked against these alone, so an
        # authenticated request costs no scan of every route.
        self._admitting = [(route, roles) for route in api_routes if (roles := admitted_roles(route)) is not None]

    def guarded_route(self, scope: Scope) -> APIRoute | None:
        """The route this request reaches, if it needs a caller."""
        for route, needs in self._routes:
            if reaches(route, scope):
                return route if needs else None
        return None

    def refusing_route(self, scope: Scope, role: str) -> APIRoute | None:
        """The `admits`-marked route this request reaches, if it does not let `role` in."""
        for route, roles in self._admitting:
            if reaches(route, scope):
                return None if role in roles else route
        return None


def reaches(route: APIRoute, scope: Scope) -> bool:
    """Whether `route.matches(scope)` is a full match (the path and the method), without building the child scope
    and path parameters it builds: this runs on every request. Before routing, as here, FastAPI's own `matches`
    has no include of its own to consult (the routes given to `GuardedRoutes` are the routers' own)."""
    return scope["method"] in (route.methods or ()) and route.path_regex.match(get_route_path(scope)) is not None


def with_headers(raw: Iterable[tuple[bytes, bytes]], extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """A response's raw headers with `extra` set, each replacing any header of its name (as starlette's
    `MutableHeaders.update` does, in one pass over them rather than one per header: this runs on every response)."""
    encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()]
    replaced = {name for name, _ in encoded}
    return [header for header in raw if header[0] not in replaced] + encoded


def refuse_before_body(scope: Scope, headers: Headers, limit: int, guarded: GuardedRoutes) -> Any:
    """A 401 for a route that needs a caller and has none, a 403 for a caller whose role an `admits`-marked route
    does not let in, a 413 for a declared length over the limit; else None."""
    state = scope["state"]
    principal = state.get("principal")
    if principal is None and (route := guarded.guarded_route(scope)) is not None:
        scope["route"] = route  # refused before routing: the metrics still name the route template
        return problems.from_domain_error(missing_principal(state))
    if principal is not None and (route := guarded.refusing_route(scope, principal.role)) is not None:
        scope["route"] = route
        return problems.from_domain_error(role_refused(principal.role))
    length = declared_length(headers)
    if length is not None and length > limit:
        return problems.problem_response(413, "body_too_large", HTTPStatus(413).phrase, BodyTooLarge(limit).detail)
    return None


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute] = ()) -> None:
        """`routes`: every route the app serves, to know before routing which ones need a caller."""
        self.app = app
        self.guarded = GuardedRoutes(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime: Runtime = scope["app"].state.runtime
        started = time.perf_counter()
        headers = Headers(scope=scope)
        trace_id, span_id, traceparent = telemetry.request_trace(headers.get("traceparent"))
        telemetry.trace_id_var.set(trace_id)
        telemetry.span_id_var.set(span_id)
        # Which release answered: the traffic tests of releases count it per request (cheap, and no secret:
        # the same value labels the metrics).
        extra_headers = {"traceparent": traceparent, VERSION_HEADER: runtime.settings.version}
        status_holder = [500]
        body = LimitedBody(receive, runtime.settings.max_body_bytes)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                closing = {"connection": "close"} if body.should_close(headers) else {}
                message["headers"] = with_headers(message.get("headers", []), extra_headers | closing)
            await send(message)

        try:
            if scope["path"] in OPS_PATHS:
                with tracing.untraced():  # a probe's PostgreSQL and Redis checks would each make a root trace
                    await self.app(scope, body, send_with_headers)
                return
            refusal = await self._admit(scope, headers, runtime, extra_headers) or refuse_before_body(
                scope, headers, body.limit, self.guarded
            )
            if refusal is not None:
                await refusal(scope, body, send_with_headers)
                return
            await self.app(scope, body, send_with_headers)
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
            decision = await runtime.limiter.check(bucket, policy, revocation_key, role)
        except DomainError as exc:
            return problems.from_domain_error(exc)
        extra_headers.update(decision.headers())
        if decision.revoked:  # checked in the same Redis round trip as the budget
            return problems.from_domain_error(Unauthorized("The bearer token's client has been disabled."))
        if decision.allowed:
            return None
        telemetry.RATE_LIMITED.labels(role=role).inc()
        policy = decision.policy or policy  # the instance's live policy, when it named one
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
        requests, duration = _request_series(service, route, method, status, runtime.settings.version)
        requests.inc()
        duration.observe(seconds)
        if scope["path"] not in OPS_PATHS and log.isEnabledFor(logging.INFO):
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


@functools.lru_cache(maxsize=4096)
def _request_series(service: str, route: str, method: str, status: int, version: str) -> tuple[Any, Any]:
    """The two series a request is counted in. `labels()` validates and looks its series up under a lock on every
    call; the series themselves stay registered, so remembering them loses no count (bounded: route templates,
    methods and statuses are few, and a series dropped from here is looked up again)."""
    return (
        telemetry.HTTP_REQUESTS.labels(service, route, method, str(status), version),
        telemetry.HTTP_DURATION.labels(service, route, method, version),
    )
