"""Typed domain errors raised by services and the core; `problems` maps each to an RFC 9457 response.

Services raise these instead of HTTP exceptions so that their rules stay free of HTTP.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base: an HTTP status, a stable machine-readable `code`, a human title and detail."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, response_headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.response_headers = response_headers or {}

    @property
    def headers(self) -> dict[str, str]:
        return self.response_headers


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="ghostpay"', **self.response_headers}


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class IdempotencyKeyInFlight(Conflict):
    code, title = "idempotency_key_in_flight", "Request in flight"


class InvalidRequest(DomainError):
    status, code, title = 422, "invalid_request", "Invalid request"


class IdempotencyKeyReused(DomainError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused"


class CardDeclined(DomainError):
    status, code, title = 402, "card_declined", "Card declined"


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"


class Unavailable(DomainError):
    status, code, title = 503, "unavailable", "Service unavailable"


class AuthBusy(Unavailable):
    """Too many secret verifications already running or waiting: shed rather than queue without bound."""

    code, title = "auth_busy", "Auth busy"
