"""The release state machine: blue-green and canary, with automatic rollback. Pure.

`decide(spec, desired_hash, stable, release, facts, now) -> Plan` is called once per reconcile pass: `desired_hash`
is the hash of the pod template the spec asks for, `stable` the colour serving the last promoted template,
`release` the record kept in `status.release` (so an operator restarted at any point resumes from it) and `facts`
what the cluster shows. The Plan says how many pods each colour should run and on which template, where the
Services point, and the release record to keep.

Terms: the *stable* colour serves traffic on the template it was last promoted with; a *release* starts when the
desired pod template (its hash) differs from the stable one, on the other colour. BlueGreen brings the new colour
up beside the stable one (reachable through the preview Service), switches every Service at once when it is ready
(and analysis passes), keeps the old colour for `scaleDownDelaySeconds`, then scales it to zero. Canary moves
`canarySteps` percent of each service's pods to the new colour behind the same Service, holding each step
`stepSeconds` from when all its pods are Ready (`step_ready_at`). Not ready within `progressDeadlineSeconds` (of
the release's start, or of the canary step), no analysis result by then either, failed analysis, or an abort →
traffic stays on (or returns to) the stable colour, the new one goes to zero, and the release is marked rolled back
until the spec changes again.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime

from ghostpay_operator.releaseplan import (
    NO_DEPLOYMENTS,
    ColorState,
    Plan,
    Release,
    ReleaseFacts,
    elapsed,
    stable_color_of,
    stamp,
)
from ghostpay_operator.spec import InstanceSpec
from ghostpay_operator.vocabulary import (
    FAIL,
    HEALTHY,
    IN_PROGRESS,
    PASS,
    PAUSED,
    PROGRESSING,
    ROLLED_BACK,
    Color,
    Event,
    other,
)

__all__ = [
    "ColorState", "Plan", "Release", "ReleaseFacts", "canary_replicas", "decide", "stable_color_of", "steady",
    "wake_after",
]  # fmt: skip


def canary_replicas(replicas: int, percent: int) -> tuple[int, int]:
    """(new, stable) pods of one service at `percent`: at least one new pod, never fewer than `replicas` in all."""
    new = min(replicas, max(1, math.ceil(replicas * percent / 100)))
    return new, replicas - new


def steady(stable: Color, message: str = "") -> Plan:
    """No release: every pod on the stable colour, on the desired template."""
    return Plan(
        stable_color=stable,
        share={stable: 1.0, other(stable): 0.0},
        new_template_color=stable,
        service_selects=stable,
        preview_selects=None,
        release=None,
        phase=HEALTHY,
        reason="ReleaseComplete",
        message=message,
    )


def _rolled_back(stable: Color, release: Release, reason: str, message: str) -> Plan:
    done = replace(release, outcome=ROLLED_BACK, reason=reason, message=message)
    return Plan(
        stable_color=stable,
        share={stable: 1.0, other(stable): 0.0},
        new_template_color=None,
        service_selects=stable,
        preview_selects=None,
        release=done,
        phase=ROLLED_BACK,
        reason=reason,
        message=message,
        events=[Event("Warning", reason, message)] if release.outcome != ROLLED_BACK else [],
    )


def decide(
    spec: InstanceSpec, desired_hash: str, stable: Color, release: Release | None, facts: ReleaseFacts, now: datetime
) -> Plan:
    """The next step of the release for `spec` (whose pod template hashes to `desired_hash`)."""
    stable_state = facts.colors.get(stable, NO_DEPLOYMENTS)
    if stable_state.template_hash in (None, desired_hash):
        # Nothing to release: first install (the stable colour is simply built), or the spec is (back) at stable.
        events = (
            [Event("Normal", "ReleaseAborted", "The spec is back at the stable version.")]
            if (release and release.outcome == IN_PROGRESS)
            else []
        )
        plan = steady(stable, f"Version {spec.version} is stable on {stable}.")
        return replace(plan, events=events)
    if release is not None and release.target_hash == desired_hash and release.outcome == ROLLED_BACK:
        return _rolled_back(stable, release, release.reason, release.message)
    if release is None or release.target_hash != desired_hash:
        release = Release(desired_hash, spec.version, other(stable), stamp(now), step_started_at=stamp(now))
        started = Event("Normal", "ReleaseStarted", f"Releasing {spec.version} on {release.color}.")
        return _progress(spec, stable, release, facts, now, [started])
    return _progress(spec, stable, release, facts, now, [])


def _progress(
    spec: InstanceSpec, stable: Color, release: Release, facts: ReleaseFacts, now: datetime, events: list[Event]
) -> Plan:
    new_state = facts.colors.get(release.color, NO_DEPLOYMENTS)
    if facts.abort:
        return _rolled_back(stable, release, "Aborted", "The release was aborted (ghostpay.io/abort).")
    if facts.migration == "failed":
        return _rolled_back(stable, release, "MigrationFailed", f"The migration for {release.version} failed.")
    if facts.analysis is not None and facts.analysis.verdict == FAIL:
        return _rolled_back(stable, release, "AnalysisFailed", facts.analysis.message)
    ready = new_state.ready and new_state.template_hash == release.target_hash
    deadline = spec.release.progress_deadline_seconds
    if release.switched_at is None and elapsed(release.step_started_at, now) > deadline:
        if not ready:
            return _rolled_back(
                stable, release, "ProgressDeadlineExceeded", f"{release.version} was not ready within {deadline} s."
            )
        if spec.release.prometheus_url and facts.analysis is None:  # Prometheus unreachable, or no data
            message = f"No analysis of {release.version} could be measured within {deadline} s."
            return _rolled_back(stable, release, "AnalysisInconclusive", message)
    if spec.release.strategy == "Canary":
        return _canary(spec, stable, release, ready, facts, now, events)
    return _blue_green(spec, stable, release, ready, facts, now, events)


def _completed(release: Release, events: list[Event]) -> Plan:
    """The new colour is the stable one now; the release record is done with."""
    plan = steady(release.color, f"Version {release.version} is stable on {release.color}.")
    done = Event("Normal", "ReleaseComplete", plan.message)
    return replace(plan, promoted_version=release.version, events=[*events, done])


def _both_up(stable: Color, release: Release, selects: Color, events: list[Event], reason: str, message: str) -> Plan:
    """Blue-green: both colours at full size, the new one on the desired template, the Services on `selects`."""
    new = release.color
    return Plan(
        stable_color=stable,
        share={stable: 1.0, new: 1.0},
        new_template_color=new,
        service_selects=selects,
        preview_selects=new,
        release=release,
        phase=PROGRESSING,
        reason=reason,
        message=message,
        events=events,
    )


def _blue_green(
    spec: InstanceSpec,
    stable: Color,
    release: Release,
    ready: bool,
    facts: ReleaseFacts,
    now: datetime,
    events: list[Event],
) -> Plan:
    new = release.color
    if release.switched_at is not None:
        if elapsed(release.switched_at, now) >= spec.release.scale_down_delay_seconds:
            return _completed(release, events)
        message = f"Traffic is on {new}; {stable} stays up for {spec.release.scale_down_delay_seconds} s."
        return _both_up(stable, release, new, events, "ScalingDown", message)
    message = f"Starting {release.version} on {new} (preview)."
    waiting = _both_up(stable, release, stable, events, "WaitingForReady", message)
    if facts.migration != "succeeded":
        return replace(
            waiting,
            share={stable: 1.0, new: 0.0},
            reason="MigrationRunning",
            message=f"Migrating the database for {release.version}.",
        )
    if not ready:
        return waiting
    if spec.release.prometheus_url and facts.analysis is None:
        return replace(waiting, reason="Analyzing", message=f"Analysing {release.version}.")
    if not spec.release.auto_promotion and not facts.promote:
        return replace(
            waiting,
            phase=PAUSED,
            reason="WaitingForPromotion",
            message=f"{release.version} is ready on {new}; annotate ghostpay.io/promote to switch.",
        )
    switched = replace(release, switched_at=stamp(now))
    message = f"Traffic switched to {release.version} on {new}."
    return _both_up(stable, switched, new, [*events, Event("Normal", "Switched", message)], "Switched", message)


def _at_step(spec: InstanceSpec, new_state: ColorState, percent: int) -> bool:
    """Whether the new colour's Deployments, as read, ask for this step's pods: a read from before the step's
    resize (the watch not yet caught up with the pass that wrote it) is rolled out at the previous step's count."""
    return all(
        new_state.replicas.get(name) == canary_replicas(service.replicas, percent)[0]
        for name, service in spec.services.items()
    )


def _canary(
    spec: InstanceSpec,
    stable: Color,
    release: Release,
    ready: bool,
    facts: ReleaseFacts,
    now: datetime,
    events: list[Event],
) -> Plan:
    new = release.color
    steps = spec.release.canary_steps
    percent = steps[min(release.step, len(steps) - 1)]
    at_step = Plan(
        stable_color=stable,
        share={new: percent / 100, stable: 1 - percent / 100},
        new_template_color=new,
        service_selects=None,
        preview_selects=None,
        release=release,
        phase=PROGRESSING,
        reason="CanaryStep",
        message=f"{percent}% of pods on {release.version}.",
        events=events,
    )
    if facts.migration != "succeeded":
        return replace(
            at_step,
            share={stable: 1.0, new: 0.0},
            service_selects=stable,
            reason="MigrationRunning",
            message=f"Migrating the database for {release.version}.",
        )
    if not (ready and _at_step(spec, facts.colors.get(new, NO_DEPLOYMENTS), percent)):
        return at_step
    if release.step_ready_at is None:
        # The hold counts from here, as Argo Rollouts and Flagger count a pause once the canary's pods are
        # available: counted from the step's start, a step whose pods take about stepSeconds to turn Ready (a busy
        # cluster) would pass on as soon as they are, having hardly served at its share.
        release = replace(release, step_ready_at=stamp(now))
        at_step = replace(at_step, release=release)
    held = elapsed(release.step_ready_at, now) >= spec.release.step_seconds
    analysed = spec.release.prometheus_url is None or (facts.analysis is not None and facts.analysis.verdict == PASS)
    if not (held and analysed):
        return at_step
    if percent >= 100:
        return _completed(release, events)
    advanced = replace(release, step=release.step + 1, step_started_at=stamp(now), step_ready_at=None)
    next_percent = steps[advanced.step]
    message = f"{next_percent}% of pods on {release.version}."
    return replace(
        at_step,
        release=advanced,
        share={new: next_percent / 100, stable: 1 - next_percent / 100},
        message=message,
        events=[*events, Event("Normal", "CanaryStep", message)],
    )


def wake_after(spec: InstanceSpec, record: Release | None, now: datetime) -> float | None:
    """Seconds until the release's next decision that only time brings — a canary step's hold ends, the old
    colour's scale-down delay ends, the progress deadline passes — so that the operator looks again then rather than
    at its next resync (up to 30 s later: every canary step would last that much longer). None without a release
    in progress."""
    if record is None or record.outcome != IN_PROGRESS:
        return None
    if record.switched_at is not None:
        ends = [spec.release.scale_down_delay_seconds - elapsed(record.switched_at, now)]
    else:
        ends = [spec.release.progress_deadline_seconds - elapsed(record.step_started_at, now)]
        if record.step_ready_at is not None:
            ends.append(spec.release.step_seconds - elapsed(record.step_ready_at, now))
    return max(0.0, min(ends))
