"""FastAPI dependencies shared by every service: the runtime, the caller, and role checks.

The edge middleware has already verified the bearer token; these only read what it found, so a token is
verified once per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

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


def route_needs_principal(route: APIRoute) -> bool:
    """Whether the route asks for the caller (through `get_principal`, directly or via `require_roles`)."""

    def uses(dependant: Dependant) -> bool:
        return any(dep.call is get_principal or uses(dep) for dep in dependant.dependencies)

    return uses(route.dependant)


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting only callers whose role is one of `roles`."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"The {principal.role} role may not call this endpoint.")
        return principal

    return check


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
CallerDep = Annotated[Principal, Depends(get_principal)]
