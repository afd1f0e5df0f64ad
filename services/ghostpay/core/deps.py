"""FastAPI dependencies shared by every service: the runtime, the caller, and role checks.

The edge middleware has already verified the bearer token; these only read what it found, so a token is
verified once per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
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
    error: Unauthorized | None = getattr(request.state, "auth_error", None)
    raise error or Unauthorized("A bearer token is required.")


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting only callers whose role is one of `roles`."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"The {principal.role} role may not call this endpoint.")
        return principal

    return check


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
CallerDep = Annotated[Principal, Depends(get_principal)]
