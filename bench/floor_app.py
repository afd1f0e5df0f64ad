"""The floor: the least a charge can cost on this stack, served for `bench.charge_bench` to measure beside the service.

    GHOSTPAY_DATABASE_URL=… GHOSTPAY_REDIS_URL=… python -m bench.floor_app --port PORT --merchant MERCHANT_ID

A FastAPI app on the same server (`ghostpay.cli.run_server`) whose `POST /charges` takes the same body model and
answers the same response model as the service, and per request does exactly the two round trips the charge path
must do and nothing else: the rate limiter's GCRA script in Redis (with a revocation marker key, as for a
merchant) and the `ghostpay_charge` SQL function, through a pool and a Redis client built as the service builds
them. No auth, no edge middleware, no metrics or logs. A charge that is not approved is answered 402.

Its charge ids start with `ch_floor` (`FLOOR_CHARGE_PREFIX`; the service's are `ch_` and hex digits) so the
benchmark can count its charges in the database.

With `--bare` it does no I/O at all: the same route, body and response models on the same server, answering an
approved charge built in the process (`create_bare_app`). What the floor costs beyond the bare app is the two
I/O clients (asyncpg, redis-py) and the event loop's work for them.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ghostpay.charges.api import Charge, ChargeCreate
from ghostpay.charges.store import CHARGE_SQL
from ghostpay.cli import run_server
from ghostpay.core import db, ratelimit, revocation
from ghostpay.core.settings import Settings

FLOOR_CHARGE_PREFIX = "ch_floor"
_NO_HASH = bytes(32)  # no Idempotency-Key is sent, so the request fingerprint is never compared
_INTERVAL_US, _BURST = 1.0, 1_000_000  # the benchmark's merchant budget: never refuses


def create_app(settings: Settings, merchant_id: str) -> FastAPI:
    numbers = itertools.count(1)
    prefix = f"{FLOOR_CHARGE_PREFIX}{os.getpid() % 100_000:05d}"  # 27 characters with the number: as a real id
    keys = [f"ghostpay:rl:client:{merchant_id}", revocation.marker_key(merchant_id)]
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await db.create_pool(settings)
        client = aioredis.from_url(
            settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
        )
        state["script"] = client.register_script(ratelimit.SCRIPT)
        try:
            yield
        finally:
            await state["pool"].close()
            await client.aclose()

    app = FastAPI(title="GhostPay floor", lifespan=lifespan)

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/charges", status_code=201, response_model=Charge)
    async def charge(body: ChargeCreate) -> Any:
        await state["script"](keys=keys, args=[_INTERVAL_US, _BURST])
        row = await state["pool"].fetchrow(
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
        if row["outcome"] != "created" or row["status"] != "approved":
            return JSONResponse({"outcome": row["outcome"], "status": row["status"]}, status_code=402)
        return Charge.model_validate(dict(row))

    return app


def create_bare_app(merchant_id: str) -> FastAPI:
    """The floor's route without its two round trips: parse the body, build the charge, answer it."""
    numbers = itertools.count(1)
    app = FastAPI(title="GhostPay bare route")

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/charges", status_code=201, response_model=Charge)
    async def charge(body: ChargeCreate) -> Any:
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

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_app", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--merchant", required=True, help="the merchant whose cards are charged")
    parser.add_argument("--bare", action="store_true", help="no PostgreSQL or Redis: the route alone")
    args = parser.parse_args()
    app = create_bare_app(args.merchant) if args.bare else create_app(Settings(), args.merchant)
    run_server(app, args.host, args.port)


if __name__ == "__main__":
    main()
