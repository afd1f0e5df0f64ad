"""The status logic: phases, conditions and their transition times, without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ghostpay_operator import release
from ghostpay_operator import spec as specs
from ghostpay_operator import status as st
from ghostpay_operator.kinds import InstanceStatus
from tests.operator.support.samples import body

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = specs.parse(body())
RELEASE = release.Release("hash-new", "1.5.0", "green", "2026-01-01T00:00:00Z")


def _deployments(version: str = "1.4.0", ready: int = 2, updated: int = 2) -> dict[str, st.DeploymentState]:
    return {name: st.DeploymentState(version, 2, ready, updated, True) for name in specs.SERVICES}


def _conditions(status: InstanceStatus) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


@pytest.mark.parametrize(
    ("observed", "previous", "phase", "conditions"),
    [
        (
            st.StatusFacts("running"),
            {},
            "Pending",
            {
                "Ready": ("False", "ReplicasNotReady"),
                "Progressing": ("True", "MigrationRunning"),
                "Degraded": ("False", "AsExpected"),
            },
        ),
        (
            st.StatusFacts("succeeded", _deployments(ready=1, updated=2)),
            {},
            "Pending",
            {
                "Ready": ("False", "ReplicasNotReady"),
                "Progressing": ("True", "RollingOut"),
                "Degraded": ("False", "AsExpected"),
            },
        ),
        (
            st.StatusFacts("succeeded", _deployments()),
            {},
            "Healthy",
            {
                "Ready": ("True", "AllReplicasReady"),
                "Progressing": ("False", "ReleaseComplete"),
                "Degraded": ("False", "AsExpected"),
            },
        ),
        (
            st.StatusFacts("succeeded", _deployments("1.3.0")),
            {"activeVersion": "1.3.0"},
            "Progressing",
            {
                "Ready": ("True", "MinimumReplicasReady"),
                "Progressing": ("True", "RollingOut"),
                "Degraded": ("False", "AsExpected"),
            },
        ),
        (
            st.StatusFacts("failed", _deployments("1.3.0")),
            {"activeVersion": "1.3.0"},
            "Degraded",
            {
                "Ready": ("True", "MinimumReplicasReady"),
                "Progressing": ("False", "MigrationFailed"),
                "Degraded": ("True", "MigrationFailed"),
            },
        ),
        (
            st.StatusFacts(problem=st.Problem("DatabaseSecretMissing", "no Secret payments-db")),
            {},
            "Degraded",
            {
                "Ready": ("False", "DatabaseSecretMissing"),
                "Progressing": ("False", "DatabaseSecretMissing"),
                "Degraded": ("True", "DatabaseSecretMissing"),
            },
        ),
    ],
)
def test_phase_and_conditions(
    observed: st.StatusFacts, previous: dict[str, Any], phase: str, conditions: dict[str, tuple[str, str]]
) -> None:
    status = st.compute_status(SPEC, observed, previous, T0)  # type: ignore[arg-type]
    assert status["phase"] == phase
    assert _conditions(status) == conditions
    assert status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_a_healthy_release_records_active_and_previous_versions() -> None:
    first = st.compute_status(SPEC, st.StatusFacts("succeeded", _deployments()), {}, T0)
    assert (first["activeVersion"], first.get("previousVersion")) == ("1.4.0", None)
    assert (first["readyReplicas"], first["replicas"], first["readyText"]) == (8, 8, "8/8")
    newer = specs.parse(body(version="1.5.0"))
    second = st.compute_status(newer, st.StatusFacts("succeeded", _deployments("1.5.0")), first, T0)
    assert (second["activeVersion"], second["previousVersion"]) == ("1.5.0", "1.4.0")


def test_the_active_version_is_the_one_traffic_reaches_during_a_release() -> None:
    """At a blue-green switch (or past half of a canary) the active colour's pods run the new version: the status
    says so at once, not when the old colour has been scaled down."""
    newer = specs.parse(body(version="1.5.0"))
    first = st.compute_status(SPEC, st.StatusFacts("succeeded", _deployments()), {}, T0)
    switched = release.Plan(
        stable_color="blue",
        share={"blue": 1.0, "green": 1.0},
        new_template_color="green",
        service_selects="green",
        preview_selects="green",
        release=RELEASE,
        phase="Progressing",
        reason="",
        message="",
    )
    serving = st.StatusFacts("succeeded", _deployments("1.5.0"), active_version="1.5.0")
    during = st.compute_status(newer, serving, first, T0, switched)
    assert (during["phase"], during["activeColor"]) == ("Progressing", "green")
    assert (during["activeVersion"], during["previousVersion"]) == ("1.5.0", "1.4.0")
    not_serving = st.StatusFacts("succeeded", _deployments("1.5.0", ready=0), active_version="1.5.0")
    assert st.compute_status(newer, not_serving, first, T0, switched)["activeVersion"] == "1.4.0"


def test_a_canary_counts_the_ready_pods_of_both_colors() -> None:
    stable, canary = st.DeploymentState("1.4.0", 1, 1, 1, True), st.DeploymentState("1.5.0", 1, 1, 1, True)
    both = st.combined([stable, canary])
    assert (both.version, both.replicas, both.ready, both.updated, both.current) == ("1.4.0", 2, 2, 2, True)
    assert not st.combined([stable, st.DeploymentState("1.5.0", 1, 0, 0, False)]).current
    observed = st.StatusFacts("succeeded", dict.fromkeys(specs.SERVICES, both), active_version="1.4.0")
    half = release.Plan(
        stable_color="blue",
        share={"blue": 0.5, "green": 0.5},
        new_template_color="green",
        service_selects=None,
        preview_selects=None,
        release=RELEASE,
        phase="Progressing",
        reason="",
        message="",
    )
    status = st.compute_status(SPEC, observed, {"activeVersion": "1.4.0"}, T0, half)
    assert (status["readyReplicas"], status["replicas"]) == (8, 8)
    assert _conditions(status)["Ready"] == ("True", "MinimumReplicasReady")


def test_transition_times_move_only_when_a_status_changes() -> None:
    later = T0 + timedelta(minutes=5)
    pending = st.compute_status(SPEC, st.StatusFacts("running"), {}, T0)
    still = st.compute_status(SPEC, st.StatusFacts("succeeded", _deployments(ready=0)), pending, later)
    assert [c["lastTransitionTime"] for c in still["conditions"]] == [
        c["lastTransitionTime"] for c in pending["conditions"]
    ]
    healthy = st.compute_status(SPEC, st.StatusFacts("succeeded", _deployments()), still, later)
    times = {c["type"]: c["lastTransitionTime"] for c in healthy["conditions"]}
    assert times == {
        "Ready": "2026-01-01T00:05:00Z",
        "Progressing": "2026-01-01T00:05:00Z",
        "Degraded": "2026-01-01T00:00:00Z",
    }


def test_the_same_observation_gives_the_same_status() -> None:
    observed = st.StatusFacts("succeeded", _deployments())
    first = st.compute_status(SPEC, observed, {}, T0)
    assert st.compute_status(SPEC, observed, first, T0 + timedelta(hours=1)) == first


ROTATING = specs.parse(body(keyRotation={"schedule": "0 3 * * *", "gracePeriod": "24h"}))
HEALTHY = st.StatusFacts("succeeded", _deployments())


def _rotated(*runs: tuple[str, bool, int]) -> st.StatusFacts:
    """Finished rotation Jobs as (name, succeeded, minutes after T0)."""
    finished = tuple(st.RotationRun(name, ok, T0 + timedelta(minutes=m)) for name, ok, m in runs)
    return st.StatusFacts("succeeded", _deployments(), rotations=finished)


def _key_rotation(status: InstanceStatus) -> dict[str, Any]:
    return next((dict(c) for c in status["conditions"] if c["type"] == "KeyRotation"), {})


def test_last_key_rotation_is_the_newest_successful_completion() -> None:
    status = st.compute_status(ROTATING, _rotated(("r-1", True, 10), ("r-2", True, 70), ("r-3", False, 130)), {}, T0)
    assert status["lastKeyRotation"] == "2026-01-01T01:10:00Z"


def test_last_key_rotation_never_moves_backwards() -> None:
    first = st.compute_status(ROTATING, _rotated(("r-2", True, 70)), {}, T0)
    # r-2 cleaned up by the history limit, only an older success still listed: the record stays.
    later = st.compute_status(ROTATING, _rotated(("r-1", True, 10)), first, T0 + timedelta(hours=2))
    assert later["lastKeyRotation"] == "2026-01-01T01:10:00Z"
    assert st.compute_status(ROTATING, HEALTHY, first, T0)["lastKeyRotation"] == "2026-01-01T01:10:00Z"


def test_no_rotation_yet_means_no_record_and_no_condition() -> None:
    status = st.compute_status(ROTATING, HEALTHY, {}, T0)
    assert "lastKeyRotation" not in status and _key_rotation(status) == {}


def test_a_failed_rotation_sets_the_condition_false_naming_the_job_and_a_success_sets_it_back() -> None:
    ok = st.compute_status(ROTATING, _rotated(("r-1", True, 10)), {}, T0)
    assert (_key_rotation(ok)["status"], _key_rotation(ok)["reason"]) == ("True", "Rotated")
    failed = st.compute_status(ROTATING, _rotated(("r-1", True, 10), ("r-2", False, 70)), ok, T0 + timedelta(hours=1))
    condition = _key_rotation(failed)
    assert (condition["status"], condition["reason"]) == ("False", "RotationFailed")
    assert "r-2" in condition["message"]
    assert condition["lastTransitionTime"] == "2026-01-01T01:00:00Z"
    assert failed["lastKeyRotation"] == "2026-01-01T00:10:00Z"  # the failure does not count
    assert failed["phase"] == "Healthy"  # the services still serve with the keys they have
    again = st.compute_status(
        ROTATING, _rotated(("r-2", False, 70), ("r-3", True, 130)), failed, T0 + timedelta(hours=3)
    )
    assert (_key_rotation(again)["status"], _key_rotation(again)["reason"]) == ("True", "Rotated")
    assert "r-3" in _key_rotation(again)["message"]
    assert _key_rotation(again)["lastTransitionTime"] == "2026-01-01T03:00:00Z"


def test_the_key_rotation_condition_keeps_its_transition_time_and_outlives_its_jobs() -> None:
    failed = st.compute_status(ROTATING, _rotated(("r-1", False, 10)), {}, T0)
    still = st.compute_status(ROTATING, _rotated(("r-1", False, 10)), failed, T0 + timedelta(hours=1))
    assert still == failed
    gone = st.compute_status(ROTATING, HEALTHY, failed, T0 + timedelta(hours=2))  # the Job was cleaned up
    assert _key_rotation(gone) == _key_rotation(failed)


def test_without_key_rotation_the_condition_goes_and_the_record_stays() -> None:
    rotating = st.compute_status(ROTATING, _rotated(("r-1", False, 10), ("r-0", True, 5)), {}, T0)
    assert _key_rotation(rotating)
    status = st.compute_status(SPEC, HEALTHY, rotating, T0)
    assert [c["type"] for c in status["conditions"]] == ["Ready", "Progressing", "Degraded"]
    assert status["lastKeyRotation"] == "2026-01-01T00:05:00Z"
