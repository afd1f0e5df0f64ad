"""The release state machine: blue-green and canary, with automatic rollback. Pure.

`decide(spec, release, observed, now) -> Plan` is called once per reconcile pass with what the cluster shows;
the Plan says how many pods each colour should run and on which template, where the Services point, and the
release record to keep in `status.release` (so an operator restarted at any point resumes from it).

Terms: the *stable* colour serves traffic on the template it was last promoted with; a *release* starts when the
desired pod template (its hash) differs from the stable one, on the other colour. BlueGreen brings the new colour
up beside the stable one (reachable through the preview Service), switches every Service at once when it is ready
(and analysis passes), keeps the old colour for `scaleDownDelaySeconds`, then scales it to zero. Canary moves
`canarySteps` percent of each service's pods to the new colour behind the same Service, holding each step
`stepSeconds`. Not ready within `progressDeadlineSeconds` (of the release's start, or of the canary step), no
analysis result by then either, failed analysis, or an abort → traffic stays on (or returns to) the stable
colour, the new one goes to zero, and the release is marked rolled back until the spec changes again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ghostpay_operator.spec import InstanceSpec

BLUE, GREEN = "blue", "green"


def other(color: str) -> str:
    return GREEN if color == BLUE else BLUE


@dataclass(frozen=True)
class ColorState:
    """One colour's Deployments, all services together."""

    template_hash: str | None  # None: this colour has no Deployments
    version: str | None
    ready: bool  # every service has all its desired pods ready on this template


@dataclass(frozen=True)
class Observed:
    colors: dict[str, ColorState]
    migration: str = "succeeded"  # absent | running | succeeded | failed, for the desired image
    analysis: str | None = None  # None (not configured or not measured yet) | pass | fail
    promote: bool = False  # ghostpay.io/promote annotation
    abort: bool = False  # ghostpay.io/abort annotation


@dataclass(frozen=True)
class Release:
    """`status.release`: the release in progress (or the one last rolled back)."""

    target_hash: str
    version: str
    color: str
    started_at: str
    step: int = 0  # canary: index into canarySteps
    step_started_at: str | None = None
    switched_at: str | None = None  # blue-green: when the Services moved to the new colour
    outcome: str = "InProgress"  # InProgress | RolledBack
    reason: str = ""
    message: str = ""

    def to_status(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @staticmethod
    def from_status(raw: dict[str, Any] | None) -> Release | None:
        if not raw:
            return None
        return Release(**{k: raw[k] for k in Release.__dataclass_fields__ if k in raw})


@dataclass(frozen=True)
class Plan:
    """What to make true now. `replicas[color]` is a fraction of each service's desired replicas (0..1)."""

    stable_color: str
    share: dict[str, float]  # per colour, the share of each service's replicas
    new_template_color: str | None  # the colour that runs the desired template (None: no release)
    service_selects: str | None  # the colour every Service selects; None: both (canary)
    preview_selects: str | None
    release: Release | None
    phase: str  # Healthy | Progressing | RolledBack | Paused
    reason: str
    message: str
    promoted_version: str | None = None  # set when a release completes: the new stable version
    events: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def active_color(self) -> str:
        """The colour traffic goes to (`status.activeColor`): the one every Service selects, or during a canary the
        one running the larger share of pods (the stable one on a tie)."""
        if self.service_selects is not None:
            return self.service_selects
        new = other(self.stable_color)
        return new if self.share.get(new, 0.0) > self.share.get(self.stable_color, 0.0) else self.stable_color

    @property
    def serving_colors(self) -> tuple[str, ...]:
        """The colours whose pods receive traffic: one, or both during a canary."""
        return (self.service_selects,) if self.service_selects is not None else (BLUE, GREEN)


def stable_color_of(active_color: str, release: Release | None) -> str:
    """The stable colour, from the last status: during a release the one it is not on (traffic may already be on
    the new colour), otherwise the active one."""
    if release is not None and release.outcome == "InProgress":
        return other(release.color)
    return active_color


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _elapsed(since: str | None, now: datetime) -> float:
    return (now - _parse(since)).total_seconds() if since else 0.0


def canary_replicas(replicas: int, percent: int) -> tuple[int, int]:
    """(new, stable) pods of one service at `percent`: at least one new pod, never fewer than `replicas` in all."""
    new = min(replicas, max(1, math.ceil(replicas * percent / 100)))
    return new, replicas - new


def steady(stable: str, message: str = "") -> Plan:
    """No release: every pod on the stable colour, on the desired template."""
    return Plan(
        stable, {stable: 1.0, other(stable): 0.0}, stable, stable, None, None, "Healthy", "ReleaseComplete", message
    )


def _rolled_back(stable: str, release: Release, reason: str, message: str) -> Plan:
    done = replace(release, outcome="RolledBack", reason=reason, message=message)
    return Plan(
        stable,
        {stable: 1.0, other(stable): 0.0},
        None,
        stable,
        None,
        done,
        "RolledBack",
        reason,
        message,
        events=[("Warning", reason, message)] if release.outcome != "RolledBack" else [],
    )


def decide(
    spec: InstanceSpec, desired_hash: str, stable: str, release: Release | None, observed: Observed, now: datetime
) -> Plan:
    """The next step of the release for `spec` (whose pod template hashes to `desired_hash`)."""
    stable_state = observed.colors.get(stable, ColorState(None, None, False))
    if stable_state.template_hash in (None, desired_hash):
        # Nothing to release: first install (the stable colour is simply built), or the spec is (back) at stable.
        events = (
            [("Normal", "ReleaseAborted", "The spec is back at the stable version.")]
            if (release and release.outcome == "InProgress")
            else []
        )
        plan = steady(stable, f"Version {spec.version} is stable on {stable}.")
        return replace(plan, events=events)
    if release is not None and release.target_hash == desired_hash and release.outcome == "RolledBack":
        return _rolled_back(stable, release, release.reason, release.message)
    if release is None or release.target_hash != desired_hash:
        release = Release(desired_hash, spec.version, other(stable), _ts(now), step_started_at=_ts(now))
        return _progress(
            spec,
            stable,
            release,
            observed,
            now,
            [("Normal", "ReleaseStarted", f"Releasing {spec.version} on {release.color}.")],
        )
    return _progress(spec, stable, release, observed, now, [])


def _progress(
    spec: InstanceSpec,
    stable: str,
    release: Release,
    observed: Observed,
    now: datetime,
    events: list[tuple[str, str, str]],
) -> Plan:
    new = release.color
    new_state = observed.colors.get(new, ColorState(None, None, False))
    if observed.abort:
        return _rolled_back(stable, release, "Aborted", "The release was aborted (ghostpay.io/abort).")
    if observed.migration == "failed":
        return _rolled_back(stable, release, "MigrationFailed", f"The migration for {release.version} failed.")
    if observed.analysis == "fail":
        return _rolled_back(
            stable,
            release,
            "AnalysisFailed",
            f"The error rate of {release.version} exceeded {spec.release.max_error_rate:g}.",
        )
    ready = new_state.ready and new_state.template_hash == release.target_hash
    deadline = spec.release.progress_deadline_seconds
    if release.switched_at is None and _elapsed(release.step_started_at, now) > deadline:
        if not ready:
            return _rolled_back(
                stable, release, "ProgressDeadlineExceeded", f"{release.version} was not ready within {deadline} s."
            )
        if spec.release.prometheus_url and observed.analysis is None:  # Prometheus unreachable, or no data
            message = f"No error rate of {release.version} could be measured within {deadline} s."
            return _rolled_back(stable, release, "AnalysisInconclusive", message)
    if spec.release.strategy == "Canary":
        return _canary(spec, stable, release, ready, observed, now, events)
    return _blue_green(spec, stable, release, ready, observed, now, events)


def _completed(release: Release, events: list[tuple[str, str, str]]) -> Plan:
    """The new colour is the stable one now; the release record is done with."""
    plan = steady(release.color, f"Version {release.version} is stable on {release.color}.")
    return replace(
        plan, promoted_version=release.version, events=[*events, ("Normal", "ReleaseComplete", plan.message)]
    )


def _blue_green(
    spec: InstanceSpec,
    stable: str,
    release: Release,
    ready: bool,
    observed: Observed,
    now: datetime,
    events: list[tuple[str, str, str]],
) -> Plan:
    new = release.color
    if release.switched_at is not None:
        if _elapsed(release.switched_at, now) >= spec.release.scale_down_delay_seconds:
            return _completed(release, events)
        return Plan(
            stable,
            {stable: 1.0, new: 1.0},
            new,
            new,
            new,
            release,
            "Progressing",
            "ScalingDown",
            f"Traffic is on {new}; {stable} stays up for {spec.release.scale_down_delay_seconds} s.",
            events=events,
        )
    waiting = Plan(
        stable,
        {stable: 1.0, new: 1.0},
        new,
        stable,
        new,
        release,
        "Progressing",
        "WaitingForReady",
        f"Starting {release.version} on {new} (preview).",
        events=events,
    )
    if observed.migration != "succeeded":
        return replace(
            waiting,
            share={stable: 1.0, new: 0.0},
            reason="MigrationRunning",
            message=f"Migrating the database for {release.version}.",
        )
    if not ready:
        return waiting
    if spec.release.prometheus_url and observed.analysis is None:
        return replace(waiting, reason="Analyzing", message=f"Checking the error rate of {release.version}.")
    if not spec.release.auto_promotion and not observed.promote:
        return replace(
            waiting,
            phase="Paused",
            reason="WaitingForPromotion",
            message=f"{release.version} is ready on {new}; annotate ghostpay.io/promote to switch.",
        )
    switched = replace(release, switched_at=_ts(now))
    return Plan(
        stable,
        {stable: 1.0, new: 1.0},
        new,
        new,
        new,
        switched,
        "Progressing",
        "Switched",
        f"Traffic switched to {release.version} on {new}.",
        events=[*events, ("Normal", "Switched", f"Traffic switched to {release.version} on {new}.")],
    )


def _canary(
    spec: InstanceSpec,
    stable: str,
    release: Release,
    ready: bool,
    observed: Observed,
    now: datetime,
    events: list[tuple[str, str, str]],
) -> Plan:
    new = release.color
    steps = spec.release.canary_steps
    percent = steps[min(release.step, len(steps) - 1)]
    share = {new: percent / 100, stable: 1 - percent / 100}
    if observed.migration != "succeeded":
        return Plan(
            stable,
            {stable: 1.0, new: 0.0},
            new,
            stable,
            None,
            release,
            "Progressing",
            "MigrationRunning",
            f"Migrating the database for {release.version}.",
            events=events,
        )
    at_step = Plan(
        stable,
        share,
        new,
        None,
        None,
        release,
        "Progressing",
        "CanaryStep",
        f"{percent}% of pods on {release.version}.",
        events=events,
    )
    if not ready:
        return at_step
    held = _elapsed(release.step_started_at, now) >= spec.release.step_seconds
    analysed = spec.release.prometheus_url is None or observed.analysis == "pass"
    if not (held and analysed):
        return at_step
    if percent >= 100:
        return _completed(release, events)
    advanced = replace(release, step=release.step + 1, step_started_at=_ts(now))
    next_percent = steps[advanced.step]
    return replace(
        at_step,
        release=advanced,
        share={new: next_percent / 100, stable: 1 - next_percent / 100},
        message=f"{next_percent}% of pods on {release.version}.",
        events=[*events, ("Normal", "CanaryStep", f"{next_percent}% of pods on {release.version}.")],
    )
