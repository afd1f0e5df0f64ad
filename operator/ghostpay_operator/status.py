"""The instance's status as a pure function of its spec, what was observed, and the previous status.

Follows the Kubernetes API conventions: `observedGeneration`, conditions `Ready`/`Progressing`/`Degraded` (and
`KeyRotation` with `spec.keyRotation`) with CamelCase reasons, and a `lastTransitionTime` that moves only when a
condition's status really changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ghostpay_operator import release
from ghostpay_operator.kinds import Condition, InstanceStatus
from ghostpay_operator.spec import InstanceSpec

PENDING, HEALTHY, PROGRESSING, DEGRADED, ROLLED_BACK = "Pending", "Healthy", "Progressing", "Degraded", "RolledBack"


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
class Observed:
    migration: str = "absent"  # absent | running | succeeded | failed
    deployments: dict[str, DeploymentState] = field(default_factory=dict)  # by service, of the serving colours
    problem: Problem | None = None
    rotations: tuple[RotationRun, ...] = ()
    active_version: str | None = None  # the version the active colour's Deployments run


@dataclass(frozen=True)
class Verdict:
    phase: str
    ready: tuple[bool, str, str]
    progressing: tuple[bool, str, str]
    degraded: tuple[bool, str, str]


def _ok(spec: InstanceSpec, observed: Observed) -> bool:
    return len(observed.deployments) == len(spec.services) and all(
        d.rolled_out and d.version == spec.version and d.replicas == spec.services[name].replicas
        for name, d in observed.deployments.items()
    )


def _serving(spec: InstanceSpec, observed: Observed) -> bool:
    """Every service has at least its minimum of ready pods, whatever their version."""
    return len(observed.deployments) == len(spec.services) and all(
        d.ready >= min(spec.min_replicas, spec.services[name].replicas) for name, d in observed.deployments.items()
    )


def verdict(spec: InstanceSpec, observed: Observed, was_active: bool, plan: release.Plan | None = None) -> Verdict:
    """The phase and the three conditions: (status, reason, message) each."""
    serving = _serving(spec, observed)
    ready = (
        (serving, "MinimumReplicasReady", "Every service has its minimum of ready pods.")
        if serving
        else (False, "ReplicasNotReady", "Some service has fewer ready pods than its minimum.")
    )
    if observed.problem is not None:
        p = observed.problem
        return Verdict(
            DEGRADED,
            ready if serving else (False, p.reason, p.message),
            (False, p.reason, p.message),
            (True, p.reason, p.message),
        )
    healthy = (False, "AsExpected", "Nothing is wrong.")
    if plan is not None and plan.phase == ROLLED_BACK:
        return Verdict(ROLLED_BACK, ready, (False, plan.reason, plan.message), (True, plan.reason, plan.message))
    if plan is not None and plan.release is not None and plan.phase in ("Progressing", "Paused"):
        return Verdict(
            PROGRESSING, ready, (True, plan.reason, plan.message), (False, "AsExpected", "Nothing is wrong.")
        )
    if observed.migration == "failed":
        message = f"The database migration Job for {spec.version} failed; see its pod logs."
        return Verdict(DEGRADED, ready, (False, "MigrationFailed", message), (True, "MigrationFailed", message))
    if _ok(spec, observed):
        done = f"Version {spec.version} is running with all replicas ready."
        return Verdict(HEALTHY, (True, "AllReplicasReady", done), (False, "ReleaseComplete", done), healthy)
    if observed.migration != "succeeded":
        step = (True, "MigrationRunning", f"Migrating the database for {spec.version}.")
    else:
        step = (True, "RollingOut", f"Rolling out {spec.version}: waiting for pods to be ready.")
    return Verdict(PROGRESSING if was_active else PENDING, ready, step, healthy)


def _condition(
    previous: list[Condition], kind: str, state: tuple[bool, str, str], generation: int, now: str
) -> Condition:
    status = "True" if state[0] else "False"
    before = next((c for c in previous if c.get("type") == kind), None)
    changed = before is None or before.get("status") != status
    return {
        "type": kind,
        "status": status,
        "reason": state[1],
        "message": state[2],
        "lastTransitionTime": now if changed or before is None else before["lastTransitionTime"],
        "observedGeneration": generation,
    }


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def last_key_rotation(previous: str | None, runs: tuple[RotationRun, ...]) -> str | None:
    """The newest successful rotation's completion; never earlier than what was recorded before (the Jobs it
    came from may since have been cleaned up by the CronJob's history limit)."""
    times = [run.finished_at for run in runs if run.succeeded]
    if previous:
        times.append(datetime.fromisoformat(previous))
    return _stamp(max(times)) if times else None


def key_rotation_state(runs: tuple[RotationRun, ...]) -> tuple[bool, str, str] | None:
    """The `KeyRotation` condition from the newest finished rotation Job; None when none has finished."""
    if not runs:
        return None
    newest = max(runs, key=lambda run: (run.finished_at, run.job))
    if newest.succeeded:
        return (True, "Rotated", f"Key rotation Job {newest.job} completed at {_stamp(newest.finished_at)}.")
    return (False, "RotationFailed", f"Key rotation Job {newest.job} failed; see its pod logs.")


def _key_rotation_condition(
    spec: InstanceSpec, observed: Observed, previous: list[Condition], stamp: str
) -> list[Condition]:
    """No condition without `spec.keyRotation`; with it, the newest finished Job's verdict, else the last one."""
    if spec.key_rotation is None:
        return []
    state = key_rotation_state(observed.rotations)
    if state is not None:
        return [_condition(previous, "KeyRotation", state, spec.generation, stamp)]
    before = next((c for c in previous if c.get("type") == "KeyRotation"), None)
    return [] if before is None else [{**before, "observedGeneration": spec.generation}]


def compute_status(
    spec: InstanceSpec, observed: Observed, previous: InstanceStatus, now: datetime, plan: release.Plan | None = None
) -> InstanceStatus:
    stamp = _stamp(now)
    active_version = previous.get("activeVersion")
    decided = verdict(spec, observed, was_active=active_version is not None, plan=plan)
    conditions = previous.get("conditions", [])
    status: InstanceStatus = {
        **previous,
        "observedGeneration": spec.generation,
        "phase": decided.phase,
        "conditions": [
            _condition(conditions, "Ready", decided.ready, spec.generation, stamp),
            _condition(conditions, "Progressing", decided.progressing, spec.generation, stamp),
            _condition(conditions, "Degraded", decided.degraded, spec.generation, stamp),
            *_key_rotation_condition(spec, observed, conditions, stamp),
        ],
        "activeColor": plan.active_color if plan else previous.get("activeColor", "blue"),
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
