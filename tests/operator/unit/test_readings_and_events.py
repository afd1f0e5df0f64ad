"""The pure parts of a reconcile pass: reading key-rotation Jobs, and the Events a status change is worth."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ghostpay_operator import decide, readings
from ghostpay_operator import status as st
from ghostpay_operator.kinds import InstanceStatus

ROTATION = {"app.kubernetes.io/component": "key-rotation"}


def _job(labels: dict[str, str], conditions: list[tuple[str, str, str]], completion: str | None = None) -> Any:
    status: dict[str, Any] = {
        "conditions": [{"type": t, "status": s, "lastTransitionTime": at} for t, s, at in conditions]
    }
    if completion:
        status["completionTime"] = completion
    return {"metadata": {"labels": labels}, "status": status}


def test_rotation_runs_are_the_finished_key_rotation_jobs() -> None:
    jobs = {
        "payments-key-rotation-1": _job(
            ROTATION, [("Complete", "True", "2026-01-01T00:00:09Z")], "2026-01-01T00:00:08Z"
        ),
        "payments-key-rotation-2": _job(ROTATION, [("Failed", "True", "2026-01-02T00:00:00Z")]),
        "payments-key-rotation-3": _job(ROTATION, []),  # still running
        "payments-key-rotation-4": _job(ROTATION, [("Failed", "False", "2026-01-03T00:00:00Z")]),
        "payments-migrate-abc": _job(
            {"app.kubernetes.io/component": "migrate"}, [("Complete", "True", "2026-01-04T00:00:00Z")]
        ),
    }
    assert readings.rotation_runs(jobs) == (
        st.RotationRun("payments-key-rotation-1", True, datetime(2026, 1, 1, 0, 0, 8, tzinfo=UTC)),
        st.RotationRun("payments-key-rotation-2", False, datetime(2026, 1, 2, tzinfo=UTC)),
    )


def _status(condition: tuple[str, str] | None, rotated: str | None = None) -> InstanceStatus:
    conditions: list[Any] = [{"type": "Ready", "status": "True", "message": "fine"}]
    if condition is not None:
        conditions.append({"type": "KeyRotation", "status": condition[0], "message": condition[1]})
    status: dict[str, Any] = {"conditions": conditions}
    if rotated:
        status["lastKeyRotation"] = rotated
    return status  # type: ignore[return-value]


def test_a_newly_failed_rotation_is_a_warning_once() -> None:
    failed = _status(("False", "Key rotation Job r-2 failed"))
    assert decide.rotation_events(_status(("True", "r-1 done")), failed) == [
        ("Warning", "KeyRotationFailed", "Key rotation Job r-2 failed")
    ]
    assert decide.rotation_events(_status(None), failed)[0][1] == "KeyRotationFailed"
    assert decide.rotation_events(failed, failed) == []  # the same failure again: no new event
    other = _status(("False", "Key rotation Job r-3 failed"))
    assert decide.rotation_events(failed, other) == [
        ("Warning", "KeyRotationFailed", "Key rotation Job r-3 failed")
    ]


def test_a_new_rotation_time_is_a_normal_event() -> None:
    before = _status(("True", "r-1 done"), "2026-01-01T00:00:00Z")
    after = _status(("True", "r-2 done"), "2026-01-02T00:00:00Z")
    assert decide.rotation_events(before, after) == [
        ("Normal", "KeyRotated", "The signing keys were rotated at 2026-01-02T00:00:00Z.")
    ]
    assert decide.rotation_events(after, after) == []
