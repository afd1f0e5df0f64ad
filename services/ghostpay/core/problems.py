"""RFC 9457 problem responses: the one place where errors become HTTP.

`install(app)` is called by the app factory; every error — domain errors, validation errors, unknown routes,
wrong methods and unexpected exceptions — leaves as `application/problem+json`, never with a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from ghostpay.core import errors

PROBLEM_MEDIA_TYPE = "application/problem+json"
# PostgreSQL gone or restarting: a refused or broken connection, "shutting down", "starting up". The request's
# answer is then a 503 the client may retry (a charge with the same Idempotency-Key: exactly once either way),
# given at once, not a 500 that reads like a bug.
DATABASE_UNAVAILABLE = (
    ConnectionError,
    TimeoutError,  # a connection not accepted within db.CONNECT_TIMEOUT_SECONDS
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # A restart's FATAL "terminating connection" read by an idle pooled connection before the connection's end:
    # asyncpg's protocol is left waiting for a ReadyForQuery, so the next query taken there fails at once ("cannot
    # switch to state 12; another operation (2) is in progress") before anything is sent, and asyncpg aborts that
    # connection (the pool opens a new one). Its protocol errors mean a connection no longer usable.
    asyncpg.InternalClientError,
)
log = logging.getLogger("ghostpay.problems")


_STATUS_MEANINGS = {
    400: "The body cannot be read as its media type (e.g. not UTF-8, or a broken multipart form)",
    401: "Missing or invalid bearer token",
    402: "Card declined: `decline_code` says why and `charge_id` names the recorded attempt",
    403: "The caller's role may not call this endpoint",
    404: "No such resource, or not the caller's to see",
    409: "A request with the same Idempotency-Key is still in flight",
    413: "The request body is larger than GHOSTPAY_MAX_BODY_BYTES",
    422: "The request fails validation (or an Idempotency-Key was reused with another body)",
    429: "Rate limited: see Retry-After",
    503: "A dependency is unavailable",
}
_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
    },
    "additionalProperties": True,
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problem statuses a route can answer."""
    return {
        status: {"description": _STATUS_MEANINGS[status], "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}}}
        for status in statuses
    }


def problem_body(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"urn:ghostpay:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem_response(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, code, title, detail, **extra),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def from_domain_error(exc: errors.DomainError) -> JSONResponse:
    return problem_response(exc.status, exc.code, exc.title, exc.detail, exc.headers, **exc.extra)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where and why, without echoing the input (it may hold a card number)."""
    return [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    401: "unauthorized",
    400: "bad_request",
    413: "body_too_large",
}


def _allowed_methods(routes: list[Route], request: Request) -> str:
    """Every method the path answers. Starlette's 405 names only those of the first route that matched the path,
    so `DELETE /cards` would say `Allow: POST` though `GET /cards` exists too."""
    methods: set[str] = set()
    for route in routes:
        if route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def install(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Register the handlers that turn every failure into a problem document (`routers`: all the app serves)."""
    routes = [route for router in routers for route in router.routes if isinstance(route, Route)]

    @app.exception_handler(errors.DomainError)
    async def _domain(_: Request, exc: errors.DomainError) -> JSONResponse:
        return from_domain_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            422,
            "validation_error",
            "Invalid request",
            "The request does not match the schema; see `errors`.",
            errors=_validation_errors(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        detail = exc.detail if isinstance(exc.detail, str) else phrase
        code = _HTTP_CODES.get(status, phrase.lower().replace(" ", "_"))
        headers = dict(exc.headers or {})
        if status == 405:
            headers["Allow"] = _allowed_methods(routes, request)
        return problem_response(status, code, phrase, detail, headers)

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("PostgreSQL unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        detail = "The database is unavailable; retry shortly (a charge with the same Idempotency-Key)."
        return problem_response(503, "unavailable", "Service unavailable", detail, {"Retry-After": "1"})

    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
        return problem_response(
            500, "internal_error", "Internal Server Error", "An unexpected error occurred; it has been logged."
        )
