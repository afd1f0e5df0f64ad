"""The floor: the least a charge can cost on this stack, served for `bench.charge_bench` to measure beside the service.

    GHOSTPAY_DATABASE_URL=… GHOSTPAY_REDIS_URL=… python -m bench.floor_app --port PORT --merchant MERCHANT_ID

A FastAPI app on the same server (`ghostpay.cli.run_server`), served as the service's app is (its `POST /charges` a
`LeanRoute` among the app's own routes, FastAPI's own telemetry off), whose `POST /charges` takes the same body model
and answers the same response model as the service, and per request does exactly the two round trips the charge path
must do and nothing else (`round_trips`): the rate limiter's GCRA script in Redis (with a revocation marker key, as
for a merchant) and the `ghostpay_charge` SQL function, through a pool and a Redis client built as the service
builds them. No auth, no edge middleware, no metrics or logs; bodies are bounded at the service's default limit
(413 past it), as the service bounds them. A charge that is not approved is answered 402.

Its charge ids start with `ch_floor` (`FLOOR_CHARGE_PREFIX`; the service's are `ch_` and hex digits) so the
benchmark can count its charges in the database.

With `--bare` it does no I/O at all: the same route, body and response models on the same server, answering an
approved charge built in the process (`bare_answers`). What the floor costs beyond the bare app is the two I/O
clients (asyncpg, redis-py) and the event loop's work for them.

`create_app` serves either kind of answer with FastAPI (`route_class=APIRoute` for FastAPI's own request handler);
`bench.framework_cost` serves the same answers with both, with Starlette and as a bare ASGI callable, to weigh the
framework.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from ghostpay.app import NO_NATIVE_TELEMETRY
from ghostpay.charges.api import Charge, ChargeCreate
from ghostpay.charges.store import CHARGE_SQL
from ghostpay.cli import run_server
from ghostpay.core import db, ratelimit, redis_client, revocation
from ghostpay.core.lean_route import LeanRoute
from ghostpay.core.settings import Settings

FLOOR_CHARGE_PREFIX = "ch_floor"
_NO_HASH = bytes(32)  # no Idempotency-Key is sent, so the request fingerprint is never compared
_INTERVAL_US, _BURST = 1.0, 1_000_000  # the benchmark's merchant budget: never refuses
NOT_APPROVED = {"detail": "the charge was not approved"}  # the 402's body
MAX_BODY_BYTES: int = Settings.model_fields["max_body_bytes"].default  # the service's default limit

# A floor's work per request: the approved charge, or None when it was not approved.
Answer = Callable[[ChargeCreate], Awaitable[Charge | None]]
# Opens what the answers need (the pool and the Redis client) and closes it when the server stops.
Answers = Callable[[], contextlib.AbstractAsyncContextManager[Answer]]


def round_trips(settings: Settings, merchant_id: str) -> Answers:
    """The floor's answers: the rate limiter's script, then the charge SQL function, and nothing else."""
    numbers = itertools.count(1)
    prefix = f"{FLOOR_CHARGE_PREFIX}{os.getpid() % 100_000:05d}"  # 27 characters with the number: as a real id
    keys = [f"ghostpay:rl:client:{merchant_id}", revocation.marker_key(merchant_id)]

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[Answer]:
        pool = await db.create_pool(settings)
        client = redis_client.open_client(settings.redis_url, settings.redis_timeout_seconds)
        script = client.register_script(ratelimit.SCRIPT)

        async def charge(body: ChargeCreate) -> Charge | None:
            async with redis_client.deadline(settings.redis_timeout_seconds):
                await script(keys=keys, args=[_INTERVAL_US, _BURST])
            row = await pool.fetchrow(
                CHARGE_SQL,
                f"{prefix}{next(numbers):014d}",
                body.card_id,
                merchant_id,
                body.amount,
                body.currency,
                merchant_id,
                None,
                _NO_HASH,
            )
            assert row is not None  # the function answers one row for every call
            if row["outcome"] != "created" or row["status"] != "approved":
                return None
            return Charge.model_validate(dict(row))

        try:
            yield charge
        finally:
            await pool.close()
            await client.aclose()

    return opened


def bare_answers(merchant_id: str) -> Answers:
    """The bare route's answers: parse the body, build the approved charge in the process, no I/O."""
    numbers = itertools.count(1)

    async def charge(body: ChargeCreate) -> Charge:
        row = {
            "charge_id": f"{FLOOR_CHARGE_PREFIX}b{next(numbers):018d}",
            "card_id": body.card_id,
            "merchant_id": merchant_id,
            "amount": body.amount,
            "currency": body.currency,
            "status": "approved",
            "created_at": datetime.now(UTC),
        }
        return Charge.model_validate(row)

    return answering(charge)


def answering(answer: Answer) -> Answers:
    """Answers that need nothing opened: `answer` itself."""

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[Answer]:
        yield answer

    return opened


def create_app(answers: Answers, title: str = "GhostPay floor", route_class: type[APIRoute] = LeanRoute) -> FastAPI:
    """`answers` served by FastAPI: `POST /charges` with the service's body and response models (a `route_class`
    route), and `/readyz`; bodies past the service's default limit are refused (413), as the service refuses them."""
    state: dict[str, Answer] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with answers() as answer:
            state["answer"] = answer
            yield

    app = FastAPI(title=title, lifespan=lifespan, max_body_size=MAX_BODY_BYTES, telemetry=NO_NATIVE_TELEMETRY)

    async def charge(body: ChargeCreate) -> Any:
        answered = await state["answer"](body)
        return JSONResponse(NOT_APPROVED, status_code=402) if answered is None else answered

    app.router.add_api_route(
        "/charges", charge, methods=["POST"], status_code=201, response_model=Charge, route_class_override=route_class
    )

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_app", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--merchant", required=True, help="the merchant whose cards are charged")
    parser.add_argument("--bare", action="store_true", help="no PostgreSQL or Redis: the route alone")
    args = parser.parse_args()
    if args.bare:
        app = create_app(bare_answers(args.merchant), "GhostPay bare route")
    else:
        app = create_app(round_trips(Settings(), args.merchant))
    run_server(app, args.host, args.port)


if __name__ == "__main__":
    main()
