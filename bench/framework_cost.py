"""What the web framework costs per charge: the floor's answers served by FastAPI (through its own request handler,
and through the service's `LeanRoute`), by Starlette and as a bare ASGI callable, called in this process (no HTTP
server, no sockets to the client), CPU per request.

    make bench-framework                 # or: python -m bench.framework_cost [--rounds 6] [--requests 3008]

The answers are `bench.floor_app`'s: the bare route's (parse the body, build the charge, no I/O) and the floor's
(the rate limiter's script in Redis and the charge SQL function in PostgreSQL, on `bench.environment`'s embedded
servers). FastAPI's apps are the floor's own (`floor_app.create_app`, with an `APIRoute` and with the `LeanRoute`
that `make bench` serves). The Starlette route and the ASGI callable
answer alike: the body validated by the same model (a 422 with FastAPI's error list when it is refused), bodies
past the service's default limit refused (413), then 201 with the same response model's JSON, or 402.

Each round calls every app with `--requests` requests from 16 concurrent callers (as `make bench`'s closed loop),
in an order that turns and reverses from round to round; the table gives the median and the best round. The
bare route never waits, so its callers run one after another; the floor's are 16 in flight. The figures include
the callers' own work (building each request), the same for every framework, and the I/O clients' work, not
PostgreSQL's or Redis's: the differences between frameworks are what they show, not what a server would cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import uvloop
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.environment import BARE_BATCH, FLOOR_BATCH, environment
from bench.floor_app import (
    MAX_BODY_BYTES,
    NOT_APPROVED,
    Answer,
    Answers,
    answering,
    bare_answers,
    create_app,
    round_trips,
)
from bench.http_load import CardSource
from ghostpay.charges.api import Charge, ChargeCreate
from ghostpay.cli import freeze_startup_objects
from ghostpay.core.bodies import BodyTooLarge, LimitedBody
from ghostpay.core.settings import Settings

FRAMEWORKS = ("FastAPI", "LeanRoute", "Starlette", "ASGI")
CONCURRENCY = 16
WARM_UP_REQUESTS = 2 * CONCURRENCY
_JSON = [(b"content-type", b"application/json")]
_NOT_APPROVED_JSON = bytes(JSONResponse(NOT_APPROVED).body)  # as FastAPI renders the floor's 402


def _status_and_body(charge: Charge | None) -> tuple[int, bytes]:
    return (402, _NOT_APPROVED_JSON) if charge is None else (201, charge.model_dump_json().encode())


def _unprocessable(exc: ValidationError) -> bytes:
    """FastAPI's 422 body for a body its model refused: each error located under "body"."""
    errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
    return bytes(JSONResponse({"detail": jsonable_encoder(errors)}).body)


def starlette_app(answer: Answer) -> Starlette:
    """`answer` on a Starlette route: the body validated by hand, the response dumped by the model."""

    async def charge(request: Request) -> Response:
        try:
            body = ChargeCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            return Response(_unprocessable(exc), status_code=422, media_type="application/json")
        status, content = _status_and_body(await answer(body))
        return Response(content, status_code=status, media_type="application/json")

    return Starlette(routes=[Route("/charges", charge, methods=["POST"])], max_body_size=MAX_BODY_BYTES)


def asgi_app(answer: Answer) -> ASGIApp:
    """`answer` as a bare ASGI callable: `POST /charges` only (404 otherwise), a body of at most the service's
    limit (413 past it). No lifespan: there is nothing to open."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST" or scope["path"] != "/charges":
            await _send(send, 404, b'{"detail":"Not Found"}')
            return
        limited = LimitedBody(receive, MAX_BODY_BYTES)  # the service's own counting of body bytes
        chunks: list[bytes] = []
        try:
            while not limited.complete:
                message = await limited()
                if message["type"] != "http.request":  # the client went away
                    return
                chunks.append(message.get("body", b""))
        except BodyTooLarge:
            await _send(send, 413, b'{"detail":"Request body too large"}')
            return
        try:
            body = ChargeCreate.model_validate_json(b"".join(chunks))
        except ValidationError as exc:
            await _send(send, 422, _unprocessable(exc))
            return
        await _send(send, *_status_and_body(await answer(body)))

    return app


async def _send(send: Send, status: int, content: bytes) -> None:
    headers = [*_JSON, (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def apps_for(answer: Answer) -> dict[str, ASGIApp]:
    """The same answer in each framework (the caller opened the answers; FastAPI's lifespan only hands it over)."""
    return {
        "FastAPI": create_app(answering(answer), route_class=APIRoute),
        "LeanRoute": create_app(answering(answer)),
        "Starlette": starlette_app(answer),
        "ASGI": asgi_app(answer),
    }


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[ASGIApp]:
    """`app` with its lifespan run, as a server runs it (a bare ASGI callable has none)."""
    if isinstance(app, Starlette):  # FastAPI's too
        async with app.router.lifespan_context(app):
            yield app
    else:
        yield app


@dataclass
class Caller:
    """Calls an ASGI app as a server would with one request: a POST with a JSON body (by default the next card's
    charge, to `/charges`)."""

    cards: CardSource

    async def call(self, app: ASGIApp, body: bytes | None = None, path: str = "/charges") -> tuple[int, bytes]:
        body = self.cards.next_body() if body is None else body
        received = False
        answered: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            nonlocal received
            if received:  # a second read waits for a disconnect that never comes, as on a live connection
                await asyncio.Event().wait()
            received = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
            else:
                answered["body"] += message.get("body", b"")

        await app(_scope(path, body), receive, send)
        return answered["status"], answered["body"]


def _scope(path: str, body: bytes) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *_JSON, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def cpu_per_request(app: ASGIApp, caller: Caller, requests: int) -> tuple[float, Counter[int]]:
    """CPU ms per request of this process while `CONCURRENCY` callers send `requests` requests (a multiple of
    `CONCURRENCY`), and the statuses."""
    statuses: Counter[int] = Counter()

    async def one_caller(count: int) -> None:
        for _ in range(count):
            status, _ = await caller.call(app)
            statuses[status] += 1

    started = time.process_time()
    await asyncio.gather(*(one_caller(requests // CONCURRENCY) for _ in range(CONCURRENCY)))
    return (time.process_time() - started) * 1e3 / requests, statuses


Cell = tuple[str, str]  # (kind of answer, framework)


async def _open_apps(
    stack: contextlib.AsyncExitStack, answers: Mapping[str, tuple[Answers, CardSource]]
) -> dict[Cell, tuple[ASGIApp, Caller]]:
    apps = {}
    for kind, (opened, cards) in answers.items():
        answer = await stack.enter_async_context(opened())
        for framework, app in apps_for(answer).items():
            apps[kind, framework] = await stack.enter_async_context(serving(app)), Caller(cards)
    return apps


def round_order(cells: list[Cell], round_number: int) -> list[Cell]:
    """Every cell once, starting one further each round and reversed every other round, so that no cell always
    follows the same one (and inherits its garbage)."""
    shift = round_number % len(cells)
    turned = cells[shift:] + cells[:shift]
    return turned[::-1] if round_number % 2 else turned


async def measure(answers: Mapping[str, tuple[Answers, CardSource]], rounds: int, requests: int) -> dict[str, Any]:
    """For each kind of answer (bare, floor) and framework: CPU ms per request by round, and the statuses."""
    async with contextlib.AsyncExitStack() as stack:
        apps = await _open_apps(stack, answers)
        freeze_startup_objects()  # as the servers do before they serve
        for app, caller in apps.values():  # warm-up: prepared statements, pools filled, caches
            await cpu_per_request(app, caller, WARM_UP_REQUESTS)
        figures: dict[Cell, list[float]] = {cell: [] for cell in apps}
        statuses: dict[Cell, Counter[int]] = {cell: Counter() for cell in apps}
        for round_number in range(rounds):
            for cell in round_order(list(apps), round_number):
                cpu, seen = await cpu_per_request(*apps[cell], requests)
                figures[cell].append(cpu)
                statuses[cell].update(seen)
            print(f"round {round_number + 1}/{rounds} done", file=sys.stderr, flush=True)
    return {
        kind: {
            framework: {
                "cpu_ms_per_request": figures[kind, framework],
                "median": statistics.median(figures[kind, framework]),
                "best": min(figures[kind, framework]),
                "statuses": dict(statuses[kind, framework]),
            }
            for framework in FRAMEWORKS
        }
        for kind in answers
    }


def table(report: Mapping[str, Any]) -> list[str]:
    lines = ["CPU ms per request, in process, median (best round)"]
    lines.append(f"{'':24}" + "".join(f"{framework:>18}" for framework in FRAMEWORKS))
    for kind, by_framework in report.items():
        cells = [f"{by_framework[f]['median']:.3f} ({by_framework[f]['best']:.3f})" for f in FRAMEWORKS]
        lines.append(f"{kind:24}" + "".join(f"{cell:>18}" for cell in cells))
    for kind, by_framework in report.items():
        for framework, figures in by_framework.items():
            if set(figures["statuses"]) != {201}:  # a declined or refused charge costs less than an approved one
                lines.append(f"note: {kind} on {framework} answered {figures['statuses']}, not only 201")
    return lines


def _requests(text: str) -> int:
    count = int(text)
    if count < CONCURRENCY or count % CONCURRENCY:
        raise argparse.ArgumentTypeError(f"{count}: a positive multiple of the {CONCURRENCY} callers")
    return count


def _rounds(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"{count}: at least one round")
    return count


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.framework_cost", description=str(__doc__).split("\n")[0])
    parser.add_argument("--rounds", type=_rounds, default=6, help="rounds, each calling every app (default 6)")
    parser.add_argument(
        "--requests",
        type=_requests,
        default=3008,
        help=f"requests per app and round, a multiple of {CONCURRENCY} (default 3008)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, print_line: Callable[[str], None] = print) -> dict[str, Any]:
    args = parse_args(argv)
    floor_cards = len(FRAMEWORKS) * (WARM_UP_REQUESTS + args.rounds * args.requests)  # each charged once
    started = time.monotonic()
    with environment(floor_cards) as env:
        print(f"environment ready in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
        settings = Settings(database_url=env.database_url, redis_url=env.redis_url)
        answers = {
            "bare route (no I/O)": (bare_answers(env.merchant_id), CardSource(floor_cards, BARE_BATCH)),
            "floor (2 round trips)": (round_trips(settings, env.merchant_id), CardSource(floor_cards, FLOOR_BATCH)),
        }
        report = uvloop.run(measure(answers, args.rounds, args.requests))
    for line in table(report):
        print_line(line)
    return report


if __name__ == "__main__":
    main()
