"""The operator's metrics without a cluster: what a pass changed about the release, and the series a pass leaves
(read back from the registry's text exposition, as Prometheus reads it)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ghostpay_operator import metrics
from ghostpay_operator.vocabulary import AnalysisResult, Event

STARTED = {"startedAt": "2026-01-01T00:00:00Z", "version": "2.0.0", "outcome": "InProgress"}
ROLLED = {**STARTED, "outcome": "RolledBack"}


@pytest.mark.parametrize(
    ("previous", "status", "outcomes"),
    [
        ({}, {"activeVersion": "1.0.0"}, []),
        ({}, {"release": STARTED}, ["started"]),
        ({"release": STARTED}, {"release": STARTED}, []),  # still under way
        ({"release": STARTED}, {"release": ROLLED}, ["rolled_back"]),
        ({"release": ROLLED}, {"release": ROLLED}, []),  # kept until the spec changes: counted once
        ({}, {"release": ROLLED}, ["rolled_back"]),  # aborted before the first pass saw it
        ({"release": STARTED}, {"activeVersion": "2.0.0"}, ["completed"]),
        ({"release": STARTED}, {"activeVersion": "1.0.0"}, []),  # the spec went back to the stable version
        ({"release": ROLLED}, {"release": {**STARTED, "startedAt": "2026-01-02T00:00:00Z"}}, ["started"]),
    ],
)
def test_release_outcomes(previous: dict[str, Any], status: dict[str, Any], outcomes: list[str]) -> None:
    assert metrics.release_outcomes(previous, status) == outcomes  # type: ignore[arg-type]


def _samples() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(metrics.REGISTRY).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(name: str, **labels: str) -> float | None:
    return _samples().get((name, frozenset(labels.items())))


def test_a_pass_leaves_its_series_and_forget_removes_them() -> None:
    who = {"resource_namespace": "unit", "resource_name": "pay"}
    status: dict[str, Any] = {
        "phase": "RolledBack",
        "release": ROLLED,
        "lastKeyRotation": "2026-01-01T03:00:05Z",
        "conditions": [{"type": "KeyRotation", "status": "True"}],
    }
    analysis = AnalysisResult("fail", "decline_rate", "declines")
    events = [Event("Normal", "KeyRotated", "rotated")]
    metrics.record_pass("unit", "pay", {"release": STARTED}, status, None, events, analysis)  # type: ignore[arg-type]
    metrics.record_pass("unit", "pay", status, status, "DatabaseSecretMissing", [], None)  # type: ignore[arg-type]
    metrics.record_error("unit", "pay", "Conflict")
    assert _get("ghostpay_operator_reconciles_total", **who, result="success", reason="Reconciled") == 1
    assert _get("ghostpay_operator_reconciles_total", **who, result="error", reason="DatabaseSecretMissing") == 1
    assert _get("ghostpay_operator_reconciles_total", **who, result="error", reason="Conflict") == 1
    assert (_get("ghostpay_operator_last_reconcile_timestamp_seconds", **who) or 0) > 1.7e9
    assert _get("ghostpay_operator_instance_phase", **who, phase="RolledBack") == 1
    assert _get("ghostpay_operator_instance_phase", **who, phase="Healthy") == 0
    assert _get("ghostpay_operator_releases_total", **who, outcome="rolled_back") == 1
    assert _get("ghostpay_operator_analysis_results_total", **who, result="fail", check="decline_rate") == 1
    assert _get("ghostpay_operator_key_rotations_total", **who, outcome="succeeded") == 1
    assert _get("ghostpay_operator_last_key_rotation_timestamp_seconds", **who) == 1767236405.0
    assert (_get("ghostpay_operator_key_rotation_age_seconds", **who) or 0) > 0
    assert _get("ghostpay_operator_key_rotation_succeeded", **who) == 1
    metrics.forget("unit", "pay")
    assert not [key for key in _samples() if ("resource_name", "pay") in key[1]]


def test_the_key_max_age_follows_the_rotation_schedule_and_goes_with_it() -> None:
    who = {"resource_namespace": "unit", "resource_name": "keys"}
    status: dict[str, Any] = {"phase": "Healthy"}
    metrics.record_pass("unit", "keys", status, status, None, [], None, "0 3 * * 1-5")  # type: ignore[arg-type]
    assert _get("ghostpay_operator_key_max_age_seconds", **who) == (3 * 24 + 1) * 3600  # Friday to Monday, + 1 h
    metrics.record_pass("unit", "keys", status, status, None, [], None, None)  # type: ignore[arg-type]
    assert _get("ghostpay_operator_key_max_age_seconds", **who) is None  # keyRotation removed: no limit to page on
    metrics.forget("unit", "keys")
