"""`LeanRoute`: a route FastAPI documents as any other but serves without its general request handler.

Used by the hot path (`POST /charges`). FastAPI's handler runs every endpoint through its dependency solver, its
telemetry hooks and its exit stacks, and parses the body's content type with `email.message` on every request.
A `LeanRoute` serves only an endpoint whose parameters are one body model and, if it wants them, the `Request` and
the `Response` (refused when the route is built otherwise), and does with FastAPI's own pieces what its handler
does for such an endpoint: the body read and decoded as FastAPI decodes it, validated by the route's body field
(`request_body_to_args`: the same 422 errors; JSON decoded by pydantic-core where it can, as `json.loads` would),
the endpoint's `Response` parameter honoured (its headers and status), the result validated and dumped by the
route's response field (`serialize_response`: the same JSON), all in an ASGI app of its own (`serve`) rather than
FastAPI's `request_response`. A test sends both kinds of route the same requests and compares the answers.

`include(app, router, responses)` includes a router as `app.include_router` does and also puts an unlisted copy of
each of its `LeanRoute`s at the front of the app's own routes: FastAPI 0.165 matches a request against an included
router's routes up to three times and recounts its routes' versions each time. The router's own copy stays the one
that is documented, guarded by the edge and named in 405s, and answers alike.

What each costs, counted by callgrind in process with PostgreSQL and Redis faked (the charge path's own work; README,
"The charge path's cost"): 0.84M instructions per charge through FastAPI's handler and the included router, 0.72M
with a `LeanRoute` reached through the router, 0.59M with it matched first; `serve` (not FastAPI's
`request_response`) took a further 31,000 (655,000 -> 624,000 on uvloop, the rate limiter's code counted).
"""

from __future__ import annotations

import email.message
import functools
import inspect
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI, params
from fastapi._body_limit import get_body_limit_error, wrap_app_with_body_limit
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.utils import request_body_to_args
from fastapi.exceptions import FastAPIError, RequestValidationError
from fastapi.routing import APIRoute, _effective_route_context_var, serialize_response
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import ValidationError
from pydantic_core import PydanticUndefined, from_json
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class LeanRoute(APIRoute):
    """An `APIRoute` (so documented, matched and named as one) served by `lean_handler`."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._arguments = (path, endpoint, kwargs)
        # Served without FastAPI's `request_response` too (its body limit kept): see `serve`.
        self.app = wrap_app_with_body_limit(serve(self.get_route_handler()), self.max_body_size)

    def get_route_handler(self) -> Handler:
        # Reached through an included router, FastAPI asks for the handler of the include's view of the route (with
        # the include's dependencies and defaults added), which it names in this context variable. It builds those
        # handlers at the first request the include matches, so an include refused here fails requests, not start-up.
        effective = _effective_route_context_var.get()
        route = effective if effective is not None and effective.original_route is self else self
        refusal = why_not_lean(route)
        if refusal is not None:
            raise FastAPIError(f"LeanRoute {self.path}: {refusal}")
        return lean_handler(route)

    def unlisted_copy(self) -> LeanRoute:
        """The same route, left out of the OpenAPI document."""
        path, endpoint, kwargs = self._arguments
        return LeanRoute(path, endpoint, **{**kwargs, "include_in_schema": False})


def include(app: FastAPI, router: APIRouter, responses: dict[int | str, dict[str, Any]] | None = None) -> None:
    """`app.include_router(router, responses=responses)`, with the router's own `LeanRoute`s also matched before
    anything else the app serves. Only `responses` (documentation) may be given: the copies matched first are not
    included, so nothing an include adds to serving (a prefix, dependencies, defaults) would reach them."""
    refusal = why_not_copied(app)
    if refusal is not None:
        raise FastAPIError(f"lean_route.include: {refusal}")
    app.include_router(router, responses=responses)
    app.router.routes[:0] = [route.unlisted_copy() for route in router.routes if isinstance(route, LeanRoute)]


def why_not_copied(app: FastAPI) -> str | None:
    """What the app adds to its included routes that a copy on its own routes would not get; None when nothing."""
    router = app.router
    if router.dependencies:
        return "the app has dependencies of its own, which a copy first on its routes would not run"
    if setting(router.strict_content_type) is not True:
        return "the app sets strict_content_type, which a copy first on its routes would not follow"
    if not isinstance(router.default_response_class, DefaultPlaceholder):
        return "the app sets default_response_class, which a copy first on its routes would not follow"
    return None


def setting(value: Any) -> Any:
    """A FastAPI setting's value, whether it was set or left at its default (a `DefaultPlaceholder`)."""
    return value.value if isinstance(value, DefaultPlaceholder) else value


def why_not_lean(route: Any) -> str | None:
    """What in the route (an `APIRoute`, or FastAPI's view of one through an include) a lean handler would not serve
    as FastAPI does; None when it serves it all."""
    dependant = route.dependant
    fields = [*dependant.path_params, *dependant.query_params, *dependant.header_params, *dependant.cookie_params]
    special = [
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    ]
    others = [
        *(field.name for field in fields),
        *(getattr(dependency.call, "__name__", "a dependency") for dependency in dependant.dependencies),
        *(name for name in special if name),
    ]
    if others:
        return f"the endpoint asks for more than a body, the request and the response: {others}"
    if len(dependant.body_params) != 1:
        return "the endpoint must take exactly one body parameter"
    if isinstance(route.body_field.field_info, params.Form):
        return "form and file bodies are not served"
    if not inspect.iscoroutinefunction(dependant.call):
        return "the endpoint must be an async function (FastAPI runs others in a thread pool)"
    if route.response_field is None:
        return "the route needs a response model"
    if not isinstance(route.response_class, DefaultPlaceholder):
        return "a response_class of its own is not served"
    return None


@functools.lru_cache(maxsize=64)
def is_json_media_type(content_type: str) -> bool:
    """Whether FastAPI decodes a body of this `Content-Type` as JSON (`application/json` or `application/*+json`),
    parsed as FastAPI parses it; remembered, since clients send the same few values."""
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


async def read_json_body(request: Request, strict_content_type: bool) -> Any:
    """The body as FastAPI's handler gives it to validation: absent when empty, the decoded JSON when the content
    type is JSON (or absent, unless `strict_content_type`), else the raw bytes (which the body model then refuses).
    Absent is pydantic's `PydanticUndefined`, FastAPI's mark for "no body" (a missing field), unlike JSON's `null`.

    JSON is decoded by pydantic-core's `from_json` (a charge's body in a fifth of `json.loads`'s time); what it
    refuses is decoded by `json.loads`, as FastAPI decodes it, so every refusal is FastAPI's, and a body only
    `json.loads` takes (UTF-16, a byte order mark) is still taken. Where both decode a body they give the same
    value (a test compares them on edge cases and on generated documents)."""
    try:
        body = await request.body()
        if not body:
            return PydanticUndefined
        content_type = request.headers.get("content-type")
        is_json = is_json_media_type(content_type) if content_type else not strict_content_type
        if not is_json:
            return body
        try:
            return from_json(body)
        except ValueError:
            return json.loads(body)  # FastAPI's decoder: its answer, or a body only it takes
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}], body=exc.doc) from exc
    except HTTPException:  # `core.bodies.BodyTooLarge`: answered with its own status
        raise
    except Exception as exc:  # a client gone mid-body, bytes that are not UTF-8, JSON nested past the recursion limit
        if MAX_BODY_SIZE_SCOPE_KEY in request.scope and (past_limit := get_body_limit_error(exc)):
            raise past_limit from exc  # past FastAPI's own `max_body_size`: its 413
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc


def serve(handler: Handler) -> ASGIApp:
    """The handler as an ASGI app: what FastAPI's `request_response` does for it, without the two exit stacks it
    opens per request for dependencies with `yield` (which a `LeanRoute` refuses). An exception from the handler is
    answered as there: by the app's handlers, given this request (whose body is already read)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            await wrap_app_handling_exceptions(raising(exc), request)(scope, receive, send)
            return
        await response(scope, receive, send)

    return app


def raising(exc: Exception) -> ASGIApp:
    """An ASGI app that raises `exc`: hands an exception already caught to Starlette's exception handling."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise exc

    return app


def lean_handler(route: Any) -> Handler:
    """The request handler of a route that `why_not_lean` accepts."""
    dependant = route.dependant
    body_params = dependant.body_params
    embed = route._embed_body_fields
    status_code = route.status_code
    strict_content_type = bool(setting(route.strict_content_type))
    # For one body that is not embedded, `request_body_to_args` does no more than validate the decoded JSON with the
    # body field's own validator (FastAPI builds it): called here directly, and through it only for a body it refuses,
    # so that the errors are FastAPI's.
    validator = None if embed else route.body_field._type_adapter
    name = body_params[0].name

    async def validated(received: Any) -> dict[str, Any]:
        if validator is not None and received is not PydanticUndefined:
            try:
                return {name: validator.validate_python(received, from_attributes=True)}
            except ValidationError:
                pass  # refused: FastAPI's way below gives FastAPI's errors
        values, errors = await request_body_to_args(body_params, received, embed)
        if errors:
            raise RequestValidationError(errors, body=None if received is PydanticUndefined else received)
        return values

    async def handle(request: Request) -> Response:
        values = await validated(await read_json_body(request, strict_content_type))
        # The endpoint's `Response` parameter, as FastAPI makes it: no status or length of its own until set.
        sub_response = Response()
        del sub_response.headers["content-length"]
        sub_response.status_code = None  # type: ignore[assignment]
        if dependant.request_param_name:
            values[dependant.request_param_name] = request
        if dependant.response_param_name:
            values[dependant.response_param_name] = sub_response
        assert dependant.call is not None
        result = await dependant.call(**values)
        if isinstance(result, Response):
            return result
        content = await serialize_response(
            field=route.response_field,
            response_content=result,
            include=route.response_model_include,
            exclude=route.response_model_exclude,
            by_alias=route.response_model_by_alias,
            exclude_unset=route.response_model_exclude_unset,
            exclude_defaults=route.response_model_exclude_defaults,
            exclude_none=route.response_model_exclude_none,
            dump_json=True,
        )
        status = sub_response.status_code or status_code or 200
        response = Response(content, status_code=status, media_type="application/json")
        if not is_body_allowed_for_status_code(status):  # a 204 or 304 set through the `Response` parameter
            response.body = b""
        response.headers.raw.extend(sub_response.headers.raw)
        return response

    return handle
