"""The framework comparison: the same answers behave alike in FastAPI, Starlette and the bare ASGI callable (so
the comparison weighs the framework, not different work), and a short real run measures every cell."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from bench.environment import BARE_BATCH, card_id
from bench.floor_app import NOT_APPROVED, bare_answers
from bench.http_load import CardSource
from starlette.applications import Starlette

from bench import framework_cost
from ghostpay.charges.api import Charge, ChargeCreate


async def _declined(body: ChargeCreate) -> Charge | None:
    return None


def _call_each(answer: Any, body: bytes) -> dict[str, tuple[int, Any]]:
    """Each framework's status and JSON body for one request (FastAPI's lifespan run as the server would)."""

    async def call_all() -> dict[str, tuple[int, Any]]:
        caller = framework_cost.Caller(CardSource(10, BARE_BATCH))
        answered = {}
        for name, app in framework_cost.apps_for(answer).items():
            lifespan = app.router.lifespan_context(app) if isinstance(app, Starlette) else contextlib.nullcontext()
            async with lifespan:
                status, content = await caller.call(app, body)
            answered[name] = status, json.loads(content)
        return answered

    return asyncio.run(call_all())


def _at_path(app: Any, path: str) -> Any:
    async def moved(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app({**scope, "path": path, "raw_path": path.encode()}, receive, send)

    return moved


async def _bare_answer() -> Any:
    async with bare_answers("cli_test")() as answer:
        return answer


def _body(**fields: Any) -> bytes:
    return json.dumps({"card_id": card_id(BARE_BATCH, 1), "amount": 1999, "currency": "USD", **fields}).encode()


def test_an_approved_charge_is_the_same_201_in_every_framework() -> None:
    answered = _call_each(asyncio.run(_bare_answer()), _body())
    assert {name: status for name, (status, _) in answered.items()} == dict.fromkeys(framework_cost.FRAMEWORKS, 201)
    charges = [Charge.model_validate(content) for _, content in answered.values()]
    assert {(c.card_id, c.merchant_id, c.amount, c.currency, c.status) for c in charges} == {
        (card_id(BARE_BATCH, 1), "cli_test", 1999, "USD", "approved")
    }


def test_a_charge_not_approved_is_the_same_402_in_every_framework() -> None:
    answered = _call_each(_declined, _body())
    assert answered == dict.fromkeys(framework_cost.FRAMEWORKS, (402, NOT_APPROVED))


def test_a_bad_body_is_refused_with_422_in_every_framework() -> None:
    answered = _call_each(_declined, _body(amount="lots"))
    assert {name: status for name, (status, _) in answered.items()} == dict.fromkeys(framework_cost.FRAMEWORKS, 422)


def test_the_asgi_callable_refuses_other_paths_and_bodies_past_the_limit() -> None:
    app = framework_cost.asgi_app(_declined)
    caller = framework_cost.Caller(CardSource(10, BARE_BATCH))
    elsewhere = _at_path(app, "/cards")
    assert asyncio.run(caller.call(elsewhere, _body()))[0] == 404
    too_large = _body(padding="x" * framework_cost._MAX_BODY_BYTES)
    assert asyncio.run(caller.call(app, too_large))[0] == 413


@pytest.mark.slow
def test_a_short_run_measures_every_framework_with_every_charge_approved() -> None:
    lines: list[str] = []
    report = framework_cost.main(["--rounds", "2", "--requests", "64"], lines.append)
    assert set(report) == {"bare route (no I/O)", "floor (2 round trips)"}
    for by_framework in report.values():
        assert set(by_framework) == set(framework_cost.FRAMEWORKS)
        for figures in by_framework.values():
            assert figures["statuses"] == {201: 2 * 64}
            assert len(figures["cpu_ms_per_request"]) == 2 and figures["best"] > 0
    assert lines[0].startswith("CPU ms per request") and not any(line.startswith("note:") for line in lines)
