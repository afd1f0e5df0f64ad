"""What the web framework costs per charge: the floor's answers served by FastAPI, by Starlette and as a bare ASGI
callable, called in this process (no HTTP server, no sockets to the client), CPU per request.

    make bench-framework                 # or: python -m bench.framework_cost [--rounds 6] [--requests 3000]

The answers are `bench.floor_app`'s: the bare route's (parse the body, build the charge, no I/O) and the floor's
(the rate limiter's script in Redis and the charge SQL function in PostgreSQL, on `bench.environment`'s embedded
servers). FastAPI's app is the floor's own (`floor_app.create_app`). The Starlette route and the ASGI callable do
what FastAPI does for that route and no more: validate the body with the same model (422 on a bad one), answer
201 with the same response model's JSON, or 402. Each round calls every app with `--requests` requests from 16
concurrent callers (as `make bench`'s closed loop), in a different order each round; the table gives the median
and the best round. The process's CPU includes the I/O clients' work, not PostgreSQL's or Redis's.
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
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.environment import BARE_BATCH, FLOOR_BATCH, environment
from bench.floor_app import NOT_APPROVED, Answer, Answers, bare_answers, create_app, round_trips
from bench.http_load import CardSource
from ghostpay.charges.api import Charge, ChargeCreate
from ghostpay.cli import freeze_startup_objects
from ghostpay.core.settings import Settings

FRAMEWORKS = ("FastAPI", "Starlette", "ASGI")
CONCURRENCY = 16
_JSON = [(b"content-type", b"application/json")]
_MAX_BODY_BYTES: int = Settings.model_fields["max_body_bytes"].default  # the service's default limit


_NOT_APPROVED_JSON = bytes(JSONResponse(NOT_APPROVED).body)  # as FastAPI renders the floor's 402


def _answered(charge: Charge | None) -> tuple[int, bytes]:
    return (402, _NOT_APPROVED_JSON) if charge is None else (201, charge.model_dump_json().encode())


def starlette_app(answer: Answer) -> Starlette:
    """`answer` on a Starlette route: the body validated by hand, the response dumped by the model."""

    async def charge(request: Request) -> Response:
        try:
            body = ChargeCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"detail": exc.errors(include_url=False, include_context=False)}, status_code=422)
        status, content = _answered(await answer(body))
        return Response(content, status_code=status, media_type="application/json")

    return Starlette(routes=[Route("/charges", charge, methods=["POST"])])


def asgi_app(answer: Answer) -> ASGIApp:
    """`answer` as a bare ASGI callable: `POST /charges` only (404 otherwise), a body of at most the service's
    limit (413 past it)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/charges":
            await _send(send, 404, b'{"detail":"Not Found"}')
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > _MAX_BODY_BYTES:
                await _send(send, 413, b'{"detail":"request body too large"}')
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        try:
            body = ChargeCreate.model_validate_json(b"".join(chunks))
        except ValidationError as exc:
            await _send(send, 422, exc.json(include_url=False, include_context=False).encode())
            return
        await _send(send, *_answered(await answer(body)))

    return app


async def _send(send: Send, status: int, content: bytes) -> None:
    headers = [*_JSON, (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def apps_for(answer: Answer) -> dict[str, ASGIApp]:
    """The same answer in each framework (the caller opened the answers; FastAPI's lifespan only hands it over)."""

    @contextlib.asynccontextmanager
    async def already_open() -> AsyncIterator[Answer]:
        yield answer

    return {"FastAPI": create_app(already_open), "Starlette": starlette_app(answer), "ASGI": asgi_app(answer)}


@dataclass
class Caller:
    """Calls an ASGI app as a server would with one request: `POST /charges` with a JSON body."""

    cards: CardSource

    def scope(self, body: bytes) -> Scope:
        headers = [(b"host", b"127.0.0.1"), *_JSON, (b"content-length", str(len(body)).encode())]
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/charges",
            "raw_path": b"/charges",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }

    async def call(self, app: ASGIApp, body: bytes | None = None) -> tuple[int, bytes]:
        body = self.cards.next_body() if body is None else body
        received = asyncio.Event()
        answered: dict[str, Any] = {}

        async def receive() -> dict[str, Any]:
            if received.is_set():  # a second read waits for a disconnect that never comes, as on a live connection
                await asyncio.Event().wait()
            received.set()
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
            else:
                answered["body"] = answered.get("body", b"") + message.get("body", b"")

        await app(self.scope(body), receive, send)
        return answered["status"], answered["body"]


async def cpu_per_request(app: ASGIApp, caller: Caller, requests: int) -> tuple[float, Counter[int]]:
    """CPU ms per request of this process while `CONCURRENCY` callers send `requests` requests, and the statuses."""
    statuses: Counter[int] = Counter()

    async def one_caller(count: int) -> None:
        for _ in range(count):
            status, _ = await caller.call(app)
            statuses[status] += 1

    started = time.process_time()
    await asyncio.gather(*(one_caller(requests // CONCURRENCY) for _ in range(CONCURRENCY)))
    return (time.process_time() - started) * 1e3 / max(1, sum(statuses.values())), statuses


async def measure(answers: Mapping[str, tuple[Answers, CardSource]], rounds: int, requests: int) -> dict[str, Any]:
    """For each kind of answer (bare, floor) and framework: CPU ms per request by round, and the statuses."""
    async with contextlib.AsyncExitStack() as stack:
        apps: dict[tuple[str, str], tuple[ASGIApp, Caller]] = {}
        for kind, (opened, cards) in answers.items():
            answer = await stack.enter_async_context(opened())
            for framework, app in apps_for(answer).items():
                if isinstance(app, Starlette):  # FastAPI's too: run its lifespan, as the server would
                    await stack.enter_async_context(app.router.lifespan_context(app))
                apps[kind, framework] = app, Caller(cards)
        freeze_startup_objects()  # as the servers do before they serve
        for app, caller in apps.values():  # warm-up: prepared statements, pools filled, caches
            await cpu_per_request(app, caller, 2 * CONCURRENCY)
        figures: dict[tuple[str, str], list[float]] = {key: [] for key in apps}
        statuses: dict[tuple[str, str], Counter[int]] = {key: Counter() for key in apps}
        order = list(apps)
        for round_number in range(rounds):
            shift = round_number % len(order)
            for key in order[shift:] + order[:shift]:
                cpu, seen = await cpu_per_request(*apps[key], requests)
                figures[key].append(cpu)
                statuses[key].update(seen)
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.framework_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds, each calling every app (default 6)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per app and round (default 3000)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, print_line: Callable[[str], None] = print) -> dict[str, Any]:
    args = parse_args(argv)
    floor_cards = args.rounds * (args.requests + 2 * CONCURRENCY) * len(FRAMEWORKS)
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
