"""The instance's status as a pure function of its spec, what was observed, and the previous status.

Follows the Kubernetes API conventions: `observedGeneration`, conditions `Ready`/`Progressing`/`Degraded` (and
`KeyRotation` with `spec.keyRotation`) with CamelCase reasons, and a `lastTransitionTime` that moves only when a
condition's status really changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ghostpay_operator.kinds import Condition, InstanceStatus
from ghostpay_operator.releaseplan import DEFAULT_ACTIVE, Plan, stamp
from ghostpay_operator.spec import InstanceSpec
from ghostpay_operator.vocabulary import (
    DEGRADED,
    HEALTHY,
    PAUSED,
    PENDING,
    PROGRESSING,
    ROLLED_BACK,
    ConditionState,
    MigrationState,
    Phase,
)


@dataclass(frozen=True)
class DeploymentState:
    """What one service's Deployment reports."""

    version: str
    replicas: int
    ready: int
    updated: int
    current: bool  # the controller has observed the latest spec

    @property
    def rolled_out(self) -> bool:
        return self.current and self.updated >= self.replicas and self.ready >= self.replicas


def combined(states: list[DeploymentState]) -> DeploymentState:
    """One service's Deployments of several colours as one (a canary serves from both): pods added up, the
    version of the first."""
    return DeploymentState(
        version=states[0].version,
        replicas=sum(s.replicas for s in states),
        ready=sum(s.ready for s in states),
        updated=sum(s.updated for s in states),
        current=all(s.current for s in states),
    )


@dataclass(frozen=True)
class Problem:
    """Why the spec cannot be realised right now (e.g. a missing Secret)."""

    reason: str
    message: str


@dataclass(frozen=True)
class RotationRun:
    """A finished key-rotation Job."""

    job: str
    succeeded: bool
    finished_at: datetime  # completionTime, or when it was marked Failed


@dataclass(frozen=True)
class StatusFacts:
    """What the status is computed from, besides the spec, the release plan and the previous status."""

    migration: MigrationState = "absent"
    deployments: dict[str, DeploymentState] = field(default_factory=dict)  # by service, of the serving colours
    problem: Problem | None = None
    rotations: tuple[RotationRun, ...] = ()
    active_version: str | None = None  # the version the active colour's Deployments run


@dataclass(frozen=True)
class Assessment:
    """The phase and the states of the three standard conditions."""

    phase: Phase
    ready: ConditionState
    progressing: ConditionState
    degraded: ConditionState


def _ok(spec: InstanceSpec, observed: StatusFacts) -> bool:
    return len(observed.deployments) == len(spec.services) and all(
        d.rolled_out and d.version == spec.version and d.replicas == spec.services[name].replicas
        for name, d in observed.deployments.items()
    )


def _serving(spec: InstanceSpec, observed: StatusFacts) -> bool:
    """Every service has at least its minimum of ready pods, whatever their version."""
    return len(observed.deployments) == len(spec.services) and all(
        d.ready >= min(spec.min_replicas, spec.services[name].replicas) for name, d in observed.deployments.items()
    )


def assess(spec: InstanceSpec, observed: StatusFacts, was_active: bool, plan: Plan | None = None) -> Assessment:
    """The phase and the three conditions."""
    serving = _serving(spec, observed)
    ready = (
        ConditionState(serving, "MinimumReplicasReady", "Every service has its minimum of ready pods.")
        if serving
        else ConditionState(False, "ReplicasNotReady", "Some service has fewer ready pods than its minimum.")
    )
    if observed.problem is not None:
        p = observed.problem
        return Assessment(
            DEGRADED,
            ready if serving else ConditionState(False, p.reason, p.message),
            ConditionState(False, p.reason, p.message),
            ConditionState(True, p.reason, p.message),
        )
    healthy = ConditionState(False, "AsExpected", "Nothing is wrong.")
    if plan is not None and plan.phase == ROLLED_BACK:
        return Assessment(
            ROLLED_BACK,
            ready,
            ConditionState(False, plan.reason, plan.message),
            ConditionState(True, plan.reason, plan.message),
        )
    if plan is not None and plan.release is not None and plan.phase in (PROGRESSING, PAUSED):
        return Assessment(PROGRESSING, ready, ConditionState(True, plan.reason, plan.message), healthy)
    if observed.migration == "failed":
        message = f"The database migration Job for {spec.version} failed; see its pod logs."
        failed = ConditionState(True, "MigrationFailed", message)
        return Assessment(DEGRADED, ready, failed._replace(holds=False), failed)
    if _ok(spec, observed):
        done = f"Version {spec.version} is running with all replicas ready."
        return Assessment(
            HEALTHY,
            ConditionState(True, "AllReplicasReady", done),
            ConditionState(False, "ReleaseComplete", done),
            healthy,
        )
    if observed.migration != "succeeded":
        step = ConditionState(True, "MigrationRunning", f"Migrating the database for {spec.version}.")
    else:
        step = ConditionState(True, "RollingOut", f"Rolling out {spec.version}: waiting for pods to be ready.")
    return Assessment(PROGRESSING if was_active else PENDING, ready, step, healthy)


def _condition(
    previous: list[Condition], condition_type: str, state: ConditionState, generation: int, now: str
) -> Condition:
    status = "True" if state.holds else "False"
    before = next((c for c in previous if c.get("type") == condition_type), None)
    changed = before is None or before.get("status") != status
    return {
        "type": condition_type,
        "status": status,
        "reason": state.reason,
        "message": state.message,
        "lastTransitionTime": now if changed or before is None else before["lastTransitionTime"],
        "observedGeneration": generation,
    }


def condition(
    previous: list[Condition], condition_type: str, state: ConditionState, generation: int, now: datetime
) -> Condition:
    """One condition in the conventions' shape (its transition time kept while its status holds)."""
    return _condition(previous, condition_type, state, generation, stamp(now))


def last_key_rotation(previous: str | None, runs: tuple[RotationRun, ...]) -> str | None:
    """The newest successful rotation's completion; never earlier than what was recorded before (the Jobs it
    came from may since have been cleaned up by the CronJob's history limit)."""
    times = [run.finished_at for run in runs if run.succeeded]
    if previous:
        times.append(datetime.fromisoformat(previous))
    return stamp(max(times)) if times else None


def key_rotation_state(runs: tuple[RotationRun, ...]) -> ConditionState | None:
    """The `KeyRotation` condition from the newest finished rotation Job; None when none has finished."""
    if not runs:
        return None
    newest = max(runs, key=lambda run: (run.finished_at, run.job))
    if newest.succeeded:
        message = f"Key rotation Job {newest.job} completed at {stamp(newest.finished_at)}."
        return ConditionState(True, "Rotated", message)
    return ConditionState(False, "RotationFailed", f"Key rotation Job {newest.job} failed; see its pod logs.")


def _key_rotation_condition(
    spec: InstanceSpec, observed: StatusFacts, previous: list[Condition], now: str
) -> list[Condition]:
    """No condition without `spec.keyRotation`; with it, the newest finished Job's verdict, else the last one."""
    if spec.key_rotation is None:
        return []
    state = key_rotation_state(observed.rotations)
    if state is not None:
        return [_condition(previous, "KeyRotation", state, spec.generation, now)]
    before = next((c for c in previous if c.get("type") == "KeyRotation"), None)
    return [] if before is None else [{**before, "observedGeneration": spec.generation}]


def compute_status(
    spec: InstanceSpec, observed: StatusFacts, previous: InstanceStatus, now: datetime, plan: Plan | None = None
) -> InstanceStatus:
    """The new status. Without a plan (tests of the status alone), traffic is taken to reach `spec.version`."""
    at = stamp(now)
    active_version = previous.get("activeVersion")
    decided = assess(spec, observed, was_active=active_version is not None, plan=plan)
    conditions = previous.get("conditions", [])
    status: InstanceStatus = {
        **previous,
        "observedGeneration": spec.generation,
        "phase": decided.phase,
        "conditions": [
            _condition(conditions, "Ready", decided.ready, spec.generation, at),
            _condition(conditions, "Progressing", decided.progressing, spec.generation, at),
            _condition(conditions, "Degraded", decided.degraded, spec.generation, at),
            *_key_rotation_condition(spec, observed, conditions, at),
        ],
        "activeColor": plan.active_color if plan else previous.get("activeColor", DEFAULT_ACTIVE),
    }
    status.pop("release", None)
    if plan is not None and plan.release is not None:
        status["release"] = plan.release.to_status()
    serving = observed.active_version if plan is not None else spec.version
    if serving and serving != active_version and (decided.phase == HEALTHY or _serving(spec, observed)):
        status["activeVersion"] = serving  # traffic reaches it: at a blue-green switch, past half of a canary
        if active_version is not None:
            status["previousVersion"] = active_version
    rotated = last_key_rotation(previous.get("lastKeyRotation"), observed.rotations)
    if rotated is not None:
        status["lastKeyRotation"] = rotated
    ready = sum(d.ready for d in observed.deployments.values())
    status["replicas"] = spec.desired_replicas
    status["readyReplicas"] = ready
    status["readyText"] = f"{ready}/{spec.desired_replicas}"
    return status
