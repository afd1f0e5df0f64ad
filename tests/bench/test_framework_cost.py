"""The framework comparison: the same answers behave alike in FastAPI, Starlette and the bare ASGI callable (so
the comparison weighs the framework, not different work), and a short real run measures every cell."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from bench.environment import BARE_BATCH, card_id
from bench.floor_app import MAX_BODY_BYTES, NOT_APPROVED, Answer
from bench.http_load import CardSource

from bench import framework_cost
from ghostpay.charges.api import Charge, ChargeCreate

_CHARGE = Charge(
    charge_id="ch_floor000000000000000001",
    card_id=card_id(BARE_BATCH, 1),
    merchant_id="cli_test",
    amount=1999,
    currency="USD",
    status="approved",
    created_at=datetime(2026, 12, 3, 8, 0, tzinfo=UTC),
)


async def _approved(body: ChargeCreate) -> Charge | None:
    return _CHARGE


async def _declined(body: ChargeCreate) -> Charge | None:
    return None


def _call_each(answer: Answer, body: bytes, path: str = "/charges") -> dict[str, tuple[int, bytes]]:
    """Each framework's status and body for one request, each app served with its lifespan."""

    async def call_all() -> dict[str, tuple[int, bytes]]:
        caller = framework_cost.Caller(CardSource(10, BARE_BATCH))
        answered = {}
        for name, app in framework_cost.apps_for(answer).items():
            async with framework_cost.serving(app) as served:
                answered[name] = await caller.call(served, body, path)
        return answered

    return asyncio.run(call_all())


def _body(**fields: Any) -> bytes:
    return json.dumps({"card_id": card_id(BARE_BATCH, 1), "amount": 1999, "currency": "USD", **fields}).encode()


def _the_same_everywhere(answered: dict[str, tuple[int, bytes]]) -> tuple[int, Any]:
    assert set(answered) == set(framework_cost.FRAMEWORKS)
    decoded = {(status, json.dumps(json.loads(content), sort_keys=True)) for status, content in answered.values()}
    assert len(decoded) == 1, answered
    status, content = decoded.pop()
    return status, json.loads(content)


def test_an_approved_charge_is_the_same_201_in_every_framework() -> None:
    assert _the_same_everywhere(_call_each(_approved, _body())) == (201, json.loads(_CHARGE.model_dump_json()))


def test_a_charge_not_approved_is_the_same_402_in_every_framework() -> None:
    assert _the_same_everywhere(_call_each(_declined, _body())) == (402, NOT_APPROVED)


def test_a_bad_body_is_the_same_422_in_every_framework() -> None:
    status, content = _the_same_everywhere(_call_each(_declined, _body(amount="lots")))
    assert status == 422
    assert [error["loc"] for error in content["detail"]] == [["body", "amount"]]


def test_a_body_past_the_service_limit_is_refused_in_every_framework() -> None:
    padding = MAX_BODY_BYTES - len(_body(padding=""))
    assert {status for status, _ in _call_each(_approved, _body(padding="x" * padding)).values()} == {201}
    assert {status for status, _ in _call_each(_approved, _body(padding="x" * (padding + 1))).values()} == {413}


def test_the_asgi_callable_serves_only_post_charges() -> None:
    caller = framework_cost.Caller(CardSource(10, BARE_BATCH))
    assert asyncio.run(caller.call(framework_cost.asgi_app(_approved), _body(), "/cards"))[0] == 404


def test_each_round_starts_elsewhere_and_every_other_round_runs_backwards() -> None:
    cells = [("floor", "FastAPI"), ("floor", "Starlette"), ("floor", "ASGI")]
    orders = [framework_cost.round_order(cells, n) for n in range(4)]
    assert all(sorted(order) == sorted(cells) for order in orders)
    assert orders[0] == cells and orders[1] == [cells[0], cells[2], cells[1]]
    followers = {tuple(order[i : i + 2]) for order in orders for i in range(len(cells) - 1)}
    assert len(followers) > len(cells) - 1  # not always the same neighbours


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--requests", "20"], ["--requests", "0"]])
def test_counts_that_cannot_be_measured_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        framework_cost.parse_args(argv)
    assert "argument --" in capsys.readouterr().err


def test_the_default_counts_are_accepted() -> None:
    args = framework_cost.parse_args([])
    assert isinstance(args, argparse.Namespace) and args.requests % framework_cost.CONCURRENCY == 0


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
