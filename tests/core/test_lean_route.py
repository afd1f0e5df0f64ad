"""`core.lean_route`: a `LeanRoute` answers every request as FastAPI's own handler answers it, refuses endpoints it
could not serve so, and `include` serves it ahead of the included routers without changing the document."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request, Response
from fastapi.exceptions import FastAPIError, RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, field_validator
from pydantic_core import from_json

from ghostpay.core.lean_route import LeanRoute, include, is_json_media_type


class Order(BaseModel):
    item: str = Field(min_length=1)
    quantity: int = Field(strict=True, gt=0)


class Receipt(BaseModel):
    item: str
    quantity: int
    note: str | None = None


async def place(body: Order, request: Request, response: Response) -> Any:
    """Echoes the order; the item names what else to do, so one endpoint shows every way out of a handler."""
    if body.item == "teapot":
        raise HTTPException(418, "short and stout", headers={"X-Teapot": "yes"})
    if body.item == "declined":
        return JSONResponse({"declined": True}, status_code=402)
    if body.item == "malformed":
        return {"item": body.item}  # no quantity: fails the response model
    if body.item == "replayed":
        response.headers["Idempotent-Replayed"] = "true"
        response.status_code = 200
    if body.item == "nothing":
        response.status_code = 204  # no body may follow
    return Receipt(item=body.item, quantity=body.quantity, note=request.headers.get("x-note"))


BODY_LIMIT = 64 * 1024  # FastAPI's own `max_body_size`, which a LeanRoute answers as FastAPI does


def _app() -> FastAPI:
    """The same endpoint at `/plain` (FastAPI's handler) and `/lean` (a `LeanRoute`), and at `/plain-loose` and
    `/lean-loose` without a strict content type (a body without one is decoded as JSON)."""
    app = FastAPI(max_body_size=BODY_LIMIT)
    for loose in ("", "-loose"):
        for path, route_class in ((f"/plain{loose}", APIRoute), (f"/lean{loose}", LeanRoute)):
            app.router.add_api_route(
                path,
                place,
                methods=["POST"],
                status_code=201,
                response_model=Receipt,
                route_class_override=route_class,
                strict_content_type=not loose,
            )
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


JSON = {"content-type": "application/json"}
REQUESTS: dict[str, tuple[bytes, dict[str, str]]] = {
    "a valid order": (b'{"item": "tea", "quantity": 2}', {**JSON, "x-note": "by the window"}),
    "the Response parameter's header and status": (b'{"item": "replayed", "quantity": 1}', JSON),
    "a status that allows no body": (b'{"item": "nothing", "quantity": 1}', JSON),
    "a Response returned": (b'{"item": "declined", "quantity": 1}', JSON),
    "an HTTPException": (b'{"item": "teapot", "quantity": 1}', JSON),
    "a result the response model refuses": (b'{"item": "malformed", "quantity": 1}', JSON),
    "no body": (b"", JSON),
    "broken JSON": (b'{"item": "tea", ', JSON),
    "a JSON array": (b"[1, 2]", JSON),
    "null": (b"null", JSON),
    "a field missing": (b'{"item": "tea"}', JSON),
    "a field of the wrong type": (b'{"item": "tea", "quantity": "2"}', JSON),
    "a field out of range": (b'{"item": "", "quantity": 0}', JSON),
    "unknown fields": (b'{"item": "tea", "quantity": 1, "extra": true}', JSON),
    "not UTF-8": (b'{"item": "\xff\xfe", "quantity": 1}', JSON),
    "nested past the recursion limit": (b"[" * 50_000, JSON),
    "no content type": (b'{"item": "tea", "quantity": 1}', {}),
    "text/plain": (b'{"item": "tea", "quantity": 1}', {"content-type": "text/plain"}),
    "a +json type with parameters": (
        b'{"item": "tea", "quantity": 1}',
        {"content-type": "Application/Vnd.Order+JSON ; charset=utf-8"},
    ),
    "application/json/extra": (b'{"item": "tea", "quantity": 1}', {"content-type": "application/json/extra"}),
    "past FastAPI's own body limit": (b'{"item": "' + b"t" * BODY_LIMIT + b'", "quantity": 1}', JSON),
    # Where JSON decoders part ways (pydantic's, which validates a valid body in one step, and `json.loads`,
    # which FastAPI uses): each must be answered as FastAPI answers it.
    "a key given twice": (b'{"item": "coffee", "item": "tea", "quantity": 1}', JSON),
    "an escaped surrogate pair": (b'{"item": "\\ud83c\\udf75", "quantity": 1}', JSON),
    "a lone surrogate escaped": (b'{"item": "\\ud800", "quantity": 1}', JSON),
    "a UTF-8 byte order mark": (b'\xef\xbb\xbf{"item": "tea", "quantity": 1}', JSON),
    "UTF-16": ('{"item": "tea", "quantity": 1}'.encode("utf-16"), JSON),
    "a control character in a string": (b'{"item": "t\x01a", "quantity": 1}', JSON),
    "NaN": (b'{"item": "tea", "quantity": NaN}', JSON),
    "an exponent": (b'{"item": "tea", "quantity": 1e2}', JSON),
    "data after the JSON": (b'{"item": "tea", "quantity": 1} x', JSON),
    "whitespace around the JSON": (b' \n{"item": "tea", "quantity": 1}\n ', JSON),
    "an integer past 64 bits": (b'{"item": "tea", "quantity": 100000000000000000000000000000}', JSON),
}


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {name: value for name, value in response.headers.items() if name != "content-length"}
    return response.status_code, headers, response.content


@pytest.mark.parametrize("loose", ["", "-loose"])
@pytest.mark.parametrize("case", list(REQUESTS))
async def test_a_lean_route_answers_as_fastapis_handler(client: httpx.AsyncClient, case: str, loose: str) -> None:
    body, headers = REQUESTS[case]
    plain = await client.post(f"/plain{loose}", content=body, headers=headers)
    lean = await client.post(f"/lean{loose}", content=body, headers=headers)
    assert _answer(lean) == _answer(plain)
    assert int(lean.headers.get("content-length", "0")) == len(lean.content)


async def test_the_cases_cover_every_way_out(client: httpx.AsyncClient) -> None:
    """The comparison above means something only if the cases reach each outcome."""
    statuses = {}
    for case, (body, headers) in REQUESTS.items():
        statuses[case] = (await client.post("/lean", content=body, headers=headers)).status_code
    assert statuses["a valid order"] == 201
    assert statuses["the Response parameter's header and status"] == 200
    assert statuses["a Response returned"] == 402
    assert statuses["a status that allows no body"] == 204
    assert statuses["an HTTPException"] == 418
    assert statuses["a result the response model refuses"] == 500
    assert statuses["broken JSON"] == statuses["a field missing"] == statuses["text/plain"] == 422
    assert statuses["nested past the recursion limit"] == statuses["not UTF-8"] == 400
    assert statuses["a +json type with parameters"] == 201
    assert statuses["past FastAPI's own body limit"] == 413
    assert statuses["no content type"] == 422
    loose = await client.post("/lean-loose", content=REQUESTS["no content type"][0])
    assert loose.status_code == 201


class Booking(BaseModel):
    """Fields whose validation differs between pydantic's JSON and Python modes, and a validator with a bug."""

    at: Annotated[datetime | None, Field(strict=True)] = None
    on: date | str = "-"
    size: float = 0.0
    code: str = ""

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if value == "boom":
            raise KeyError("a validator's own bug")
        return value


async def book(body: Booking) -> Booking:
    return body


def _handlers_app() -> FastAPI:
    """`book` by FastAPI's handler and by a `LeanRoute`, with a route-level body limit and exception handlers of the
    app's own, one of which reads the request's body."""
    app = FastAPI()

    @app.exception_handler(RequestValidationError)
    async def echo(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = (await request.body()).decode(errors="replace")
        return JSONResponse({"echo": body, "errors": len(exc.errors())}, status_code=422)

    @app.exception_handler(HTTPException)
    async def problem(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"problem": exc.detail}, status_code=exc.status_code)

    for path, route_class in (("/plain", APIRoute), ("/lean", LeanRoute)):
        app.router.add_api_route(
            path, book, methods=["POST"], response_model=Booking, route_class_override=route_class, max_body_size=256
        )
    return app


async def _chunked(body: bytes) -> AsyncIterator[bytes]:
    yield body


BOOKINGS: dict[str, bytes] = {
    "a strict datetime sent as text": b'{"at": "2024-01-01T00:00:00"}',
    "a date or a string": b'{"on": "2024-01-01"}',
    "an integer past a float's range": b'{"size": 1' + b"0" * 400 + b"}",
    "a validator raising something else than ValueError": b'{"code": "boom"}',
    "refused, answered by a handler that reads the body": b'{"code": 1}',
    "past the route's body limit": b'{"code": "' + b"x" * 300 + b'"}',
}


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("case", list(BOOKINGS))
async def test_models_handlers_and_limits_of_the_app_s_own_are_served_as_fastapi_serves_them(
    case: str, chunked: bool
) -> None:
    transport = httpx.ASGITransport(app=_handlers_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        answers = []
        for path in ("/plain", "/lean"):
            body = BOOKINGS[case]
            content = _chunked(body) if chunked else body
            async with asyncio.timeout(5):  # a handler waiting for a body already read would wait for ever
                answers.append(_answer(await http.post(path, content=content, headers=JSON)))
    plain, lean = answers
    assert lean == plain
    assert plain[0] in {200, 413, 422, 500}


def _documents(count: int) -> list[Any]:
    """JSON documents of every kind, generated from a fixed seed: numbers over all of a float's range and past a
    64-bit integer's, text from all of Unicode's planes, nesting."""
    rng = random.Random(15)

    def value(depth: int) -> Any:
        kind = rng.random()
        if depth > 4 or kind < 0.3:
            return rng.choice(
                [
                    rng.randint(-(10**30), 10**30),
                    rng.random() * 10.0 ** rng.randint(-300, 300),
                    rng.choice([True, False, None]),
                    "".join(chr(rng.randint(0, 0x2FFFF)) for _ in range(rng.randint(0, 6))),
                ]
            )
        if kind < 0.65:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {"".join(chr(rng.randint(32, 0x7FF)) for _ in range(rng.randint(0, 4))): value(depth + 1) for _ in "ab"}

    return [value(0) for _ in range(count)]


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


EDGE_DOCUMENTS = [
    b'{"a": 1, "a": 2}',
    b'{"a": 1, "b": 2, "a": 3}',
    b'{"a": "\\ud83d\\ude00"}',
    b'{"a": "\\ud800"}',
    b'{"a": 1e400}',
    b'{"a": NaN, "b": -Infinity}',
    b'{"a": 1' + b"0" * 400 + b"}",
    b'{"a": 5e-324, "b": 2.2250738585072011e-308, "c": 1.0000000000000002, "d": 9007199254740993.0}',
    b'{"a": -0, "b": -0.0, "c": 1E2}',
    b"\xef\xbb\xbf{}",
    '{"a": 1}'.encode("utf-16"),
    b'{"a": "x\x01"}',
    b'{"a": 1} x',
    b"[" * 300 + b"]" * 300,
    b'{"\\u00e9": "\\u0000"}',
    b'{"a": 01}',
]


def test_the_decoder_gives_what_json_loads_gives_wherever_it_decodes() -> None:
    """`read_json_body` decodes with pydantic-core's `from_json`, and with `json.loads` (FastAPI's) what that refuses:
    so wherever `from_json` decodes a body, the value must be `json.loads`'s."""
    bodies = [*EDGE_DOCUMENTS]
    for document in _documents(2000):
        with contextlib.suppress(ValueError):
            bodies.append(json.dumps(document, ensure_ascii=len(bodies) % 2 == 0).encode("utf-8", "surrogatepass"))
    decoded = 0
    for body in bodies:
        try:
            value = from_json(body)
        except ValueError:
            continue  # `json.loads` decides: FastAPI's answer
        assert _same(value, json.loads(body)), body[:80]
        decoded += 1
    assert decoded > 1500  # the comparison covered most of them


@pytest.mark.parametrize(
    ("content_type", "decoded"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("APPLICATION/JSON", True),
        ("application/problem+json", True),
        ("application/jsonx", False),
        ("text/json", False),
        ("application/x-www-form-urlencoded", False),
        ("json", False),
    ],
)
def test_json_media_types_are_those_fastapi_decodes(content_type: str, decoded: bool) -> None:
    assert is_json_media_type(content_type) is decoded


async def _with_query(body: Order, page: Annotated[int, Query()] = 1) -> Receipt:
    return Receipt(item=body.item, quantity=page)


async def _caller() -> str:
    return "someone"


async def _with_dependency(body: Order, caller: Annotated[str, Depends(_caller)]) -> Receipt:
    return Receipt(item=caller, quantity=body.quantity)


async def _two_bodies(body: Order, other: Order) -> Receipt:
    return Receipt(item=body.item, quantity=other.quantity)


async def _no_body(request: Request) -> Receipt:
    return Receipt(item="x", quantity=1)


async def _form(item: Annotated[str, Form()]) -> Receipt:
    return Receipt(item=item, quantity=1)


def _sync(body: Order) -> Receipt:
    return Receipt(item=body.item, quantity=body.quantity)


@pytest.mark.parametrize(
    ("endpoint", "options", "reason"),
    [
        (_with_query, {"response_model": Receipt}, "more than a body"),
        (_with_dependency, {"response_model": Receipt}, "more than a body"),
        (_two_bodies, {"response_model": Receipt}, "exactly one body"),
        (_no_body, {"response_model": Receipt}, "exactly one body"),
        (_form, {"response_model": Receipt}, "form"),
        (_sync, {"response_model": Receipt}, "async function"),
        (place, {"response_model": None}, "response model"),
        (place, {"response_model": Receipt, "response_class": PlainTextResponse}, "response_class"),
    ],
)
def test_endpoints_it_would_not_serve_as_fastapi_does_are_refused(
    endpoint: Any, options: dict[str, Any], reason: str
) -> None:
    with pytest.raises(FastAPIError, match=reason):
        LeanRoute("/x", endpoint, methods=["POST"], **options)


async def test_an_include_with_dependencies_is_refused_rather_than_skipped() -> None:
    """Through `app.include_router`, FastAPI adds the include's dependencies to the route: a lean handler, which runs
    none, refuses to serve it (at the first request, when FastAPI builds the included route's handler)."""
    router = APIRouter()
    router.add_api_route("/orders", place, methods=["POST"], response_model=Receipt, route_class_override=LeanRoute)
    app = FastAPI()
    app.include_router(router, dependencies=[Depends(_caller)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        with pytest.raises(FastAPIError, match="_caller"):
            await http.post("/orders", json={"item": "tea", "quantity": 1})


@pytest.mark.parametrize(
    "app_settings",
    [
        {"dependencies": [Depends(_caller)]},
        {"strict_content_type": False},
        {"default_response_class": PlainTextResponse},
    ],
)
def test_include_refuses_an_app_whose_own_settings_a_front_copy_would_miss(app_settings: dict[str, Any]) -> None:
    """What the app adds to every route reaches an included route, not a copy put first on the app's own routes."""
    router = APIRouter()
    router.add_api_route("/orders", place, methods=["POST"], response_model=Receipt, route_class_override=LeanRoute)
    with pytest.raises(FastAPIError, match=r"lean_route\.include: the app"):
        include(FastAPI(**app_settings), router)


async def test_include_matches_the_lean_route_before_the_included_router_and_documents_it_once() -> None:
    router = APIRouter(tags=["orders"])
    router.add_api_route("/orders", place, methods=["POST"], response_model=Receipt, route_class_override=LeanRoute)
    router.add_api_route("/orders", _no_body, methods=["GET"], response_model=Receipt)
    responses: dict[int | str, dict[str, Any]] = {401: {"description": "no token"}}
    app, included = FastAPI(), FastAPI()
    included.include_router(router, responses=responses)

    include(app, router, responses=responses)

    first = app.router.routes[0]
    assert isinstance(first, LeanRoute) and first.endpoint is place and not first.include_in_schema
    assert first.tags == ["orders"] and first.path == "/orders" and first.methods == {"POST"}
    assert app.openapi() == included.openapi()  # documented once, with what the include added
    served: list[object] = []

    async def noting_the_route(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        served.append(scope.get("route"))

    transport = httpx.ASGITransport(app=noting_the_route)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        created = await http.post("/orders", json={"item": "tea", "quantity": 1})
        listed = await http.get("/orders")  # the path's other method still reaches the router
    assert created.status_code == 200 and created.json()["item"] == "tea"
    assert listed.status_code == 200 and listed.json()["item"] == "x"
    assert served[0] is first and isinstance(served[1], APIRoute) and served[1].methods == {"GET"}
