"""The disruption suite's bookkeeping, without a cluster: what counts as failed, as a double approval, and the
table it prints."""

from __future__ import annotations

import json
from pathlib import Path

from tests.kind.chaos import Report, Row
from tests.kind.traffic import Attempt, Traffic


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


def test_a_canary_row_shows_the_new_versions_share_at_each_step_in_the_table() -> None:
    report = Report()
    shares = ["10%: 23% of 600", "50%: 54% of 350", "100%: 100% of 300"]
    report.add(Row("2 canary 10/50/100", 10, 0, 0, {"0.1.0": 4}, "met", 30, shares=shares))
    verdict = report.table().splitlines()[2].split(" | ")[-1]
    assert verdict == "met (new version's share: 10%: 23% of 600, 50%: 54% of 350, 100%: 100% of 300)"
