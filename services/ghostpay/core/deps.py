"""FastAPI dependencies shared by every service: the runtime, the caller, and role checks.

The edge middleware has already verified the bearer token; these only read what it found, so a token is
verified once per request.

The hot route (`POST /charges`) reads its caller and runtime with `caller_in` and `runtime_of` instead: FastAPI
solves each sub-dependency per request at a cost (a cache key, scope checks, a call) that measured about a fifth
of the charge path's CPU. Such a route declares `openapi_extra=BEARER_SECURED`, which documents the bearer
token as the dependency would and tells the edge that the route needs a caller (`route_needs_principal`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ghostpay.core.errors import Forbidden, Unauthorized
from ghostpay.core.runtime import Runtime
from ghostpay.core.settings import Role
from ghostpay.core.tokens import Principal

_bearer = HTTPBearer(auto_error=False, description="An access token from POST /auth/token")


# Async on purpose: FastAPI runs plain `def` dependencies in a thread pool, a costly hop on the hot path.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_principal(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    raise missing_principal(request.scope.get("state") or {})


def missing_principal(state: dict[str, object]) -> Unauthorized:
    """Why a request has no caller: its token's fault, or no token."""
    error = state.get("auth_error")
    return error if isinstance(error, Unauthorized) else Unauthorized("A bearer token is required.")


# A route's `openapi_extra` when it reads the caller itself (`caller_in`): documented as the dependency would be.
BEARER_SECURED: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


def route_needs_principal(route: APIRoute) -> bool:
    """Whether the route asks for the caller (through `get_principal`, directly or via `require_roles`, or by
    declaring `BEARER_SECURED` and calling `caller_in`)."""

    def uses(dependant: Dependant) -> bool:
        return any(dep.call is get_principal or uses(dep) for dep in dependant.dependencies)

    declared = (route.openapi_extra or {}).get("security") == BEARER_SECURED["security"]
    return declared or uses(route.dependant)


_ADMITTED = "__ghostpay_admitted_roles__"


def role_refused(role: str) -> Forbidden:
    return Forbidden(f"The {role} role may not call this endpoint.")


def admits(*roles: Role) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Marks an endpoint that reads its caller with `caller_in(request, roles)`: the edge then refuses another
    role with 403 before the body is read and validated, as `require_roles` does (a caller may not learn what a
    valid body looks like for an endpoint it may not call)."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        setattr(endpoint, _ADMITTED, frozenset(roles))
        return endpoint

    return mark


def admitted_roles(route: APIRoute) -> frozenset[str] | None:
    """The roles an `admits`-marked route lets in; None for any other route."""
    roles: frozenset[str] | None = getattr(route.endpoint, _ADMITTED, None)
    return roles


def runtime_of(request: Request) -> Runtime:
    """What `RuntimeDep` gives, without a dependency to solve."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def caller_in(request: Request, roles: Collection[Role]) -> Principal:
    """What `require_roles(*roles)` gives, without dependencies to solve: the caller the edge verified, if its
    role is one of `roles` (Unauthorized without a caller, Forbidden for another role)."""
    state = request.scope.get("state") or {}  # what `request.state` wraps, read without building the wrapper
    principal: Principal | None = state.get("principal")
    if principal is None:
        raise missing_principal(state)
    if principal.role not in roles:
        raise role_refused(principal.role)
    return principal


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting only callers whose role is one of `roles`."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            raise role_refused(principal.role)
        return principal

    return check


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
CallerDep = Annotated[Principal, Depends(get_principal)]
