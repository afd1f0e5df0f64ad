"""The release state machine, transition by transition, without a cluster."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ghostpay_operator import release as rel
from ghostpay_operator import spec as specs
from ghostpay_operator.vocabulary import AnalysisResult
from tests.operator.support.samples import body

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OLD, NEW = "hash-old", "hash-new"
Facts = rel.ReleaseFacts
PASSED = AnalysisResult("pass", "all", "within every threshold")
FAILED = AnalysisResult("fail", "error_rate", "The error rate of 2.0.0 was 0.2, above maxErrorRate 0.01.")


def _spec(**release: Any) -> specs.InstanceSpec:
    return specs.parse(
        body(
            version="2.0.0",
            release={"progressDeadlineSeconds": 300, "scaleDownDelaySeconds": 30, "stepSeconds": 60, **release},
        )
    )


def _colors(blue: str | None = OLD, green: str | None = None, green_ready: bool = False) -> dict[str, rel.ColorState]:
    return {
        "blue": rel.ColorState(blue, "1.0.0" if blue else None, blue is not None),
        "green": rel.ColorState(green, "2.0.0" if green else None, green_ready),
    }


def _started(**changes: Any) -> rel.Release:
    return rel.Release(
        **{
            "target_hash": NEW,
            "version": "2.0.0",
            "color": "green",
            "started_at": "2026-01-01T00:00:00Z",
            "step_started_at": "2026-01-01T00:00:00Z",
            **changes,
        }
    )


def _later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- nothing to release ---------------------------------------------------------------------------------------------


def test_a_first_install_builds_the_stable_color() -> None:
    plan = rel.decide(_spec(), NEW, "blue", None, Facts(_colors(blue=None)), T0)
    assert (plan.phase, plan.new_template_color, plan.service_selects, plan.share) == (
        "Healthy",
        "blue",
        "blue",
        {"blue": 1.0, "green": 0.0},
    )
    assert plan.release is None


def test_a_spec_at_the_stable_template_is_steady() -> None:
    plan = rel.decide(_spec(), OLD, "blue", None, Facts(_colors()), T0)
    assert plan.phase == "Healthy" and plan.events == []


def test_going_back_to_the_stable_version_ends_a_release_at_once() -> None:
    plan = rel.decide(_spec(), OLD, "blue", _started(), Facts(_colors(green=NEW)), _later(5))
    assert plan.phase == "Healthy" and plan.share == {"blue": 1.0, "green": 0.0} and plan.release is None
    assert [e[1] for e in plan.events] == ["ReleaseAborted"]


# --- blue-green -----------------------------------------------------------------------------------------------------


def test_a_new_template_starts_a_release_on_the_other_color() -> None:
    plan = rel.decide(_spec(), NEW, "blue", None, Facts(_colors()), T0)
    assert plan.release is not None and plan.release.color == "green" and plan.release.target_hash == NEW
    assert (plan.phase, plan.reason, plan.service_selects, plan.preview_selects) == (
        "Progressing",
        "WaitingForReady",
        "blue",
        "green",
    )
    assert plan.share == {"blue": 1.0, "green": 1.0} and plan.new_template_color == "green"
    assert [e[1] for e in plan.events] == ["ReleaseStarted"]


def test_the_new_color_waits_for_the_migration() -> None:
    plan = rel.decide(_spec(), NEW, "blue", _started(), Facts(_colors(), migration="running"), _later(5))
    assert plan.reason == "MigrationRunning" and plan.share["green"] == 0.0 and plan.service_selects == "blue"


def test_traffic_stays_until_the_new_color_is_ready() -> None:
    plan = rel.decide(_spec(), NEW, "blue", _started(), Facts(_colors(green=NEW)), _later(100))
    assert (plan.reason, plan.service_selects) == ("WaitingForReady", "blue")


def test_a_ready_new_color_takes_the_traffic() -> None:
    plan = rel.decide(_spec(), NEW, "blue", _started(), Facts(_colors(green=NEW, green_ready=True)), _later(100))
    assert (plan.reason, plan.service_selects, plan.share) == ("Switched", "green", {"blue": 1.0, "green": 1.0})
    assert plan.release is not None and plan.release.switched_at == "2026-01-01T00:01:40Z"


def test_the_old_color_stays_for_the_scale_down_delay_then_goes() -> None:
    switched = _started(switched_at="2026-01-01T00:01:40Z")
    observed = Facts(_colors(green=NEW, green_ready=True))
    during = rel.decide(_spec(), NEW, "blue", switched, observed, _later(100 + 29))
    assert (during.reason, during.share, during.service_selects) == (
        "ScalingDown",
        {"blue": 1.0, "green": 1.0},
        "green",
    )
    after = rel.decide(_spec(), NEW, "blue", switched, observed, _later(100 + 30))
    assert (after.phase, after.stable_color, after.share, after.promoted_version) == (
        "Healthy",
        "green",
        {"green": 1.0, "blue": 0.0},
        "2.0.0",
    )
    assert [e[1] for e in after.events] == ["ReleaseComplete"]


def test_analysis_is_awaited_then_gates_the_switch() -> None:
    spec = _spec(analysis={"prometheusUrl": "http://prometheus:9090"})
    ready = _colors(green=NEW, green_ready=True)
    assert rel.decide(spec, NEW, "blue", _started(), Facts(ready), _later(10)).reason == "Analyzing"
    assert (
        rel.decide(spec, NEW, "blue", _started(), Facts(ready, analysis=PASSED), _later(10)).reason == "Switched"
    )


def test_without_auto_promotion_it_pauses_until_promoted() -> None:
    spec = _spec(autoPromotion=False)
    ready = _colors(green=NEW, green_ready=True)
    paused = rel.decide(spec, NEW, "blue", _started(), Facts(ready), _later(10))
    assert (paused.phase, paused.reason, paused.service_selects) == ("Paused", "WaitingForPromotion", "blue")
    assert rel.decide(spec, NEW, "blue", _started(), Facts(ready, promote=True), _later(10)).reason == "Switched"
    waiting_long = rel.decide(spec, NEW, "blue", _started(), Facts(ready), _later(3000))
    assert waiting_long.reason == "WaitingForPromotion"  # a person's decision has no deadline


def test_traffic_and_the_active_color_move_together() -> None:
    ready = Facts(_colors(green=NEW, green_ready=True))
    waiting = rel.decide(_spec(), NEW, "blue", _started(), Facts(_colors(green=NEW)), _later(10))
    switched = rel.decide(_spec(), NEW, "blue", _started(), ready, _later(100))
    scaling_down = rel.decide(_spec(), NEW, "blue", switched.release, ready, _later(110))
    assert [p.active_color for p in (waiting, switched, scaling_down)] == ["blue", "green", "green"]
    assert [p.serving_colors for p in (waiting, switched)] == [("blue",), ("green",)]
    assert scaling_down.stable_color == "blue"  # still the colour to return to


@pytest.mark.parametrize(
    ("release", "stable"),
    [(None, "green"), (_started(), "blue"), (_started(outcome="RolledBack"), "green")],
)
def test_the_stable_color_is_read_back_from_status(release: rel.Release | None, stable: str) -> None:
    # status.activeColor is "green" in every case: during a release traffic may already be on the new colour
    assert rel.stable_color_of("green", release) == stable


# --- rollback -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "at", "reason"),
    [
        (Facts(_colors(green=NEW)), 301, "ProgressDeadlineExceeded"),
        (Facts(_colors(green=NEW, green_ready=True), analysis=FAILED), 10, "AnalysisFailed"),
        (Facts(_colors(green=NEW, green_ready=True)), 301, "AnalysisInconclusive"),  # no data by the deadline
        (Facts(_colors(green=NEW), abort=True), 10, "Aborted"),
        (Facts(_colors(), migration="failed"), 10, "MigrationFailed"),
    ],
)
def test_a_failing_release_rolls_back(observed: Facts, at: float, reason: str) -> None:
    analysed = reason in ("AnalysisFailed", "AnalysisInconclusive")
    spec = _spec(analysis={"prometheusUrl": "http://p:9090"}) if analysed else _spec()
    plan = rel.decide(spec, NEW, "blue", _started(), observed, _later(at))
    assert (plan.phase, plan.reason, plan.service_selects, plan.share) == (
        "RolledBack",
        reason,
        "blue",
        {"blue": 1.0, "green": 0.0},
    )
    assert plan.release is not None and plan.release.outcome == "RolledBack"
    assert [(e[0], e[1]) for e in plan.events] == [("Warning", reason)]
    assert plan.message


def test_a_rolled_back_release_stays_so_until_the_spec_changes() -> None:
    rolled = _started(outcome="RolledBack", reason="ProgressDeadlineExceeded", message="not ready")
    again = rel.decide(_spec(), NEW, "blue", rolled, Facts(_colors(green=NEW)), _later(1000))
    assert again.phase == "RolledBack" and again.events == []  # no new event on every pass
    newer = rel.decide(_spec(), "hash-newer", "blue", rolled, Facts(_colors(green=NEW)), _later(1000))
    assert newer.phase == "Progressing" and newer.release is not None and newer.release.target_hash == "hash-newer"


def test_the_deadline_does_not_apply_once_traffic_has_moved() -> None:
    switched = _started(switched_at="2026-01-01T00:01:40Z")
    plan = rel.decide(_spec(), NEW, "blue", switched, Facts(_colors(green=NEW, green_ready=False)), _later(301))
    assert plan.phase != "RolledBack"


# --- canary ---------------------------------------------------------------------------------------------------------


def _green_at(spec: specs.InstanceSpec, percent: int, ready: bool = True) -> rel.ReleaseFacts:
    """The new colour read at `percent`'s pod counts (all rolled out, or not yet)."""
    counts = {name: rel.canary_replicas(s.replicas, percent)[0] for name, s in spec.services.items()}
    return Facts({"blue": rel.ColorState(OLD, "1.0.0", True), "green": rel.ColorState(NEW, "2.0.0", ready, counts)})


def test_canary_moves_through_its_steps_each_held_from_when_its_pods_are_ready() -> None:
    canary = {"strategy": "Canary", "canarySteps": [10, 50, 100], "stepSeconds": 60, "progressDeadlineSeconds": 300}
    spec = specs.parse(body(version="2.0.0", release=canary, services={"charges": {"replicas": 4}}))  # 1, 2, 4 pods
    start = rel.decide(spec, NEW, "blue", None, Facts(_colors()), T0)
    assert start.share == {"green": 0.1, "blue": 0.9} and start.service_selects is None
    assert start.serving_colors == ("blue", "green")
    starting = rel.decide(spec, NEW, "blue", start.release, _green_at(spec, 10, ready=False), _later(70))
    assert starting.release == start.release  # 70 s after the step's start, its pods not Ready: nothing is held yet
    ready = rel.decide(spec, NEW, "blue", start.release, _green_at(spec, 10), _later(80))
    assert ready.release == replace(start.release, step_ready_at="2026-01-01T00:01:20Z")  # the hold starts
    holding = rel.decide(spec, NEW, "blue", ready.release, _green_at(spec, 10), _later(80 + 59))
    assert holding.share == {"green": 0.1, "blue": 0.9} and holding.release == ready.release
    second = rel.decide(spec, NEW, "blue", ready.release, _green_at(spec, 10), _later(140))
    assert second.share == {"green": 0.5, "blue": 0.5} and second.release is not None
    assert (second.release.step, second.release.step_started_at, second.release.step_ready_at) == (
        1,
        "2026-01-01T00:02:20Z",
        None,
    )
    # The new colour read at the 10% counts, all rolled out (a read from before the resize): not the 50% step's.
    stale = rel.decide(spec, NEW, "blue", second.release, _green_at(spec, 10), _later(150))
    assert stale.release == second.release
    at_50 = rel.decide(spec, NEW, "blue", second.release, _green_at(spec, 50), _later(160))
    third = rel.decide(spec, NEW, "blue", at_50.release, _green_at(spec, 50), _later(220))
    assert third.share == {"green": 1.0, "blue": 0.0}
    assert [p.active_color for p in (start, second, third)] == ["blue", "blue", "green"]  # the larger share
    at_100 = rel.decide(spec, NEW, "blue", third.release, _green_at(spec, 100), _later(230))
    assert rel.decide(spec, NEW, "blue", at_100.release, _green_at(spec, 100), _later(289)).phase == "Progressing"
    done = rel.decide(spec, NEW, "blue", at_100.release, _green_at(spec, 100), _later(290))
    assert (done.phase, done.stable_color, done.service_selects, done.promoted_version) == (
        "Healthy",
        "green",
        "green",
        "2.0.0",
    )


def test_a_canary_step_without_analysis_data_rolls_back_at_the_deadline() -> None:
    spec = _spec(strategy="Canary", analysis={"prometheusUrl": "http://p:9090"})
    ready = Facts(_colors(green=NEW, green_ready=True))
    at_step = _started(step=1, step_started_at="2026-01-01T00:10:00Z")
    assert rel.decide(spec, NEW, "blue", at_step, ready, _later(600 + 299)).reason == "CanaryStep"
    assert rel.decide(spec, NEW, "blue", at_step, ready, _later(600 + 301)).reason == "AnalysisInconclusive"


def test_a_canary_failing_analysis_rolls_back() -> None:
    spec = _spec(strategy="Canary", analysis={"prometheusUrl": "http://p:9090"})
    plan = rel.decide(
        spec,
        NEW,
        "blue",
        _started(step=1),
        Facts(_colors(green=NEW, green_ready=True), analysis=FAILED),
        _later(30),
    )
    assert (plan.phase, plan.reason, plan.share) == ("RolledBack", "AnalysisFailed", {"blue": 1.0, "green": 0.0})
    assert plan.message == FAILED.message  # the check that failed says why, in the status and the event


@pytest.mark.parametrize(
    ("replicas", "percent", "split"),
    [(2, 10, (1, 1)), (2, 50, (1, 1)), (2, 100, (2, 0)), (10, 10, (1, 9)), (3, 50, (2, 1))],
)
def test_canary_replicas_keep_the_total_and_at_least_one_new_pod(
    replicas: int, percent: int, split: tuple[int, int]
) -> None:
    assert rel.canary_replicas(replicas, percent) == split


def test_the_release_record_survives_a_round_trip_through_status() -> None:
    record = _started(step=2, switched_at="2026-01-01T00:01:40Z")
    assert rel.Release.from_status(record.to_status()) == record


# --- when time alone brings the next decision ---------------------------------------------------------------------

STAMP_10S = "2026-01-01T00:00:10Z"


@pytest.mark.parametrize(
    ("record", "at", "wake"),
    [
        (None, 0, None),  # no release
        (_started(outcome="RolledBack"), 0, None),  # nothing left to decide
        (_started(), 100, 200.0),  # waiting for the new colour: the progress deadline (300 s of the step)
        (_started(step_ready_at=STAMP_10S), 20, 50.0),  # a canary step held 60 s from when it was Ready
        (_started(switched_at=STAMP_10S), 25, 15.0),  # switched: the old colour goes 30 s later
        (_started(switched_at=STAMP_10S), 99, 0.0),  # overdue: at once
    ],
)
def test_the_next_timed_decision_is_the_nearest_deadline_of_the_release(
    record: rel.Release | None, at: float, wake: float | None
) -> None:
    assert rel.wake_after(_spec(), record, _later(at)) == wake
