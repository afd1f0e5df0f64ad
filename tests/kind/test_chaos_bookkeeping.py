"""The disruption suite's bookkeeping, without a cluster: what counts as failed, as a double approval, the bound on
a broken canary's failures, and the table it prints."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.kind import chaos
from tests.kind import traffic as traffic_module
from tests.kind.chaos import Report, Row
from tests.kind.traffic import Attempt, Generator, Traffic


def test_failed_counts_attempts_without_an_answer_or_with_a_5xx() -> None:
    traffic = Traffic(
        attempts=[
            Attempt("charge", 201, "1", 0.0),
            Attempt("charge", 0, None, 0.1, error="ConnectError"),
            Attempt("charge", 503, "1", 0.2, code="unavailable"),
            Attempt("charge", 402, "1", 0.3, code="card_declined"),  # an answer a client expects: not failed
            Attempt("card", 429, "2", 0.4, code="rate_limited"),
        ]
    )
    assert (traffic.sent, traffic.failed) == (5, 2)
    assert traffic.failed_kinds() == {"charge ConnectError": 1, "charge 503 unavailable": 1}
    assert traffic.versions == {"1": 3, "2": 1}


def test_a_retry_answered_with_the_same_charge_is_not_a_double_approval() -> None:
    traffic = Traffic()
    traffic.approved["card-1"].update(["ch-1", "ch-1"])  # a retry with the same key: the same charge again
    traffic.approved["card-2"].update(["ch-2", "ch-3"])
    assert traffic.double_approvals == 1


def test_the_report_is_one_table_and_its_json(tmp_path: Path) -> None:
    report = Report()
    report.add(Row("1 blue-green release", 10, 0, 0, {"0.1.0": 4, "0.2.0": 6}, "met", 30))
    report.add(Row("3a never ready", 8, 1, 0, {"0.1.0": 8}, "NOT MET: 1 failed", 40, ["rolled back"]))
    lines = report.table().splitlines()
    assert lines[0].split(" | ")[:4] == ["scenario            ", "sent", "failed", "double approvals"]
    assert "0.1.0 (4), 0.2.0 (6)" in lines[2] and lines[3].endswith("NOT MET: 1 failed")
    report.write(tmp_path / "report.json")
    written = json.loads((tmp_path / "report.json").read_text())
    assert [row["verdict"] for row in written["rows"]] == ["met", "NOT MET: 1 failed"]


def test_the_failure_bound_is_the_broken_share_of_the_charge_attempts_in_the_time_given() -> None:
    # 120 charge attempts (and reads and cards, which do not count) over 60 s: 2 charge attempts a second.
    attempts = [Attempt(kind, 201, "1", i * 0.5) for i in range(120) for kind in ("charge", "card")]
    traffic = Traffic(attempts=attempts, duration=60.0)
    assert chaos.failure_bound(traffic, 0.5, 90.0) == 90  # half of 2/s over 90 s
    assert chaos.failure_bound(traffic, 0.25, 1.0) == 1  # rounded up
    assert chaos.failure_bound(Traffic(), 0.5, 90.0) == 0  # no traffic ran


async def test_a_charge_given_up_on_is_lost_by_kind_and_kept_with_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """`lost` names what the client gave up on; a charge so is kept to be sent again, never counted approved."""
    monkeypatch.setattr(traffic_module, "RETRY_PAUSE", 0.0)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cards":
            return httpx.Response(201, json={"card_id": "card-1"})
        return httpx.Response(503, json={"code": "unavailable"}, headers={"content-type": "application/problem+json"})

    generator = Generator({"client_id": "m", "client_secret": "s"})
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        await generator._pay(http, {"Authorization": "Bearer t"}, 0)
    result = generator.result
    assert result.lost == {"charge": 1} and (result.sent, result.failed) == (1 + 4, 4)
    [(body, key)] = result.given_up
    assert body["card_id"] == "card-1" and key and not result.approved


def test_a_canary_row_shows_the_new_versions_share_at_each_step_in_the_table() -> None:
    report = Report()
    shares = ["10%: 23% of 600", "50%: 54% of 350", "100%: 100% of 300"]
    report.add(Row("2 canary 10/50/100", 10, 0, 0, {"0.1.0": 4}, "met", 30, shares=shares))
    verdict = report.table().splitlines()[2].split(" | ")[-1]
    assert verdict == "met (new version's share: 10%: 23% of 600, 50%: 54% of 350, 100%: 100% of 300)"
