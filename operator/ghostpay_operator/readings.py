"""What a reconcile pass observed (`Observation`, which `observe` builds) and pure readers of it: what a Job, a
Deployment or a Secret says, in the operator's vocabulary. No I/O; `observe` and `decide` both use them."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ghostpay_operator import spec as specs
from ghostpay_operator import status as st
from ghostpay_operator.builders import meta, names, rotation, schedule, workloads
from ghostpay_operator.kinds import InstanceStatus, Manifest
from ghostpay_operator.releaseplan import NO_DEPLOYMENTS, ColorState
from ghostpay_operator.spec import SERVICES, InstanceSpec
from ghostpay_operator.vocabulary import AnalysisResult, Color, MigrationState


@dataclass(frozen=True)
class Observation:
    """Everything one pass decides from, read once at its start."""

    body: Manifest  # the instance, as read at the start of the pass
    spec: specs.InstanceSpec
    previous: InstanceStatus  # its status, without kopf's own bookkeeping
    full: bool  # False: a workloads-only pass (after an owned Deployment or Job changed)
    children: dict[str, dict[str, Manifest]]  # kind -> name -> live object, every kind it owns but Secrets
    key_secrets: dict[str, Manifest]  # the local key store's Secrets that exist (full passes without Vault)
    referenced_problem: st.Problem | None  # the database or Redis Secret the spec names is missing or invalid
    database_holds_local_keys: bool | None  # asked only when no key store part exists (see `keystore.plan`)
    analysis: AnalysisResult | None  # the release analysis' outcome, when one was asked for and measured
    now: datetime
    # The instance's Redis URL (with credentials) to write the rate-limit policy with, or why it cannot be had.
    redis_url: str | st.Problem | None = None
    prometheus_operator: bool = False  # the cluster serves ServiceMonitor and PrometheusRule (full passes)

    @property
    def annotations(self) -> dict[str, str]:
        return self.body["metadata"].get("annotations") or {}


def without_kopf(status: dict[str, Any]) -> InstanceStatus:
    return {k: v for k, v in status.items() if k != "kopf"}  # type: ignore[return-value]


def spec_problem(spec: specs.InstanceSpec) -> st.Problem | None:
    """What the CRD's schema cannot refuse but no child object could be made from."""
    if spec.key_rotation is not None and (message := schedule.schedule_problem(spec.key_rotation.schedule)):
        return st.Problem("InvalidSchedule", message)
    return None


def _true_conditions(job: Manifest) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}


def rotation_runs(jobs: dict[str, Manifest]) -> tuple[st.RotationRun, ...]:
    """The finished key-rotation Jobs among the instance's Jobs (the CronJob's, found by their labels)."""
    runs = []
    for name, job in sorted(jobs.items()):
        if job["metadata"].get("labels", {}).get("app.kubernetes.io/component") != rotation.COMPONENT:
            continue
        conditions = _true_conditions(job)
        if "Complete" in conditions:
            finished = job["status"].get("completionTime") or conditions["Complete"]["lastTransitionTime"]
            runs.append(st.RotationRun(name, True, datetime.fromisoformat(finished)))
        elif "Failed" in conditions:
            runs.append(st.RotationRun(name, False, datetime.fromisoformat(conditions["Failed"]["lastTransitionTime"])))
    return tuple(runs)


def rotation_running(jobs: dict[str, Manifest]) -> bool:
    """Whether a key-rotation Job has neither completed nor failed yet."""
    return any(
        job["metadata"].get("labels", {}).get("app.kubernetes.io/component") == rotation.COMPONENT
        and not {"Complete", "Failed"} & set(_true_conditions(job))
        for job in jobs.values()
    )


def migration_state(job: Manifest | None) -> MigrationState:
    if job is None:
        return "absent"
    status = job.get("status") or {}
    if status.get("succeeded"):
        return "succeeded"
    if "Failed" in _true_conditions(job):
        return "failed"
    return "running"


def deployment_state(deployment: Manifest) -> st.DeploymentState:
    status = deployment.get("status") or {}
    generation = deployment["metadata"].get("generation", 0)
    return st.DeploymentState(
        version=deployment["metadata"].get("labels", {}).get("app.kubernetes.io/version", ""),
        replicas=deployment["spec"].get("replicas", 0),
        ready=status.get("readyReplicas", 0),
        updated=status.get("updatedReplicas", 0),
        current=status.get("observedGeneration", 0) >= generation,
    )


def child_reading(child: Manifest) -> tuple[Any, ...]:
    """All that a pass reads of a Deployment or a Job (the readers above, and the hashes `decide` compares). Two
    versions of a child that read the same cannot lead a pass to different writes or status: a change elsewhere (a
    controller's bookkeeping, such as available replicas, condition heartbeats, a Job's active pods) is no news."""
    annotations = child["metadata"].get("annotations") or {}
    hashes = (child["kind"], annotations.get(meta.SPEC_HASH), annotations.get(workloads.TEMPLATE_HASH))
    if child["kind"] == "Deployment":
        return (*hashes, deployment_state(child))
    finished = sorted((kind, c.get("lastTransitionTime")) for kind, c in _true_conditions(child).items())
    component = child["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    completed = (child.get("status") or {}).get("completionTime")
    return (*hashes, component, migration_state(child), tuple(finished), completed)


def color_state(spec: InstanceSpec, deployments: dict[str, Manifest], color: Color) -> ColorState:
    """A colour's template (when all its Deployments agree on one), whether all its pods are ready, and how many
    pods each of its Deployments asks for."""
    mine = [deployments.get(names.deployment(spec.name, service, color)) for service in SERVICES]
    if any(d is None for d in mine):
        return NO_DEPLOYMENTS
    present = [d for d in mine if d is not None]
    hashes = {d["metadata"].get("annotations", {}).get(workloads.TEMPLATE_HASH) for d in present}
    states = [deployment_state(d) for d in present]
    ready = all(s.rolled_out and s.replicas > 0 for s in states)
    replicas = {service: s.replicas for service, s in zip(SERVICES, states, strict=True)}
    return ColorState(hashes.pop() if len(hashes) == 1 else None, states[0].version, ready, replicas)


def deployments_by_service(
    spec: InstanceSpec, deployments: dict[str, Manifest], colors: tuple[Color, ...]
) -> dict[str, st.DeploymentState]:
    """Each service's Deployments of `colors` (those serving traffic), as one."""
    by_service = {}
    for service in SERVICES:
        wanted = [names.deployment(spec.name, service, color) for color in colors]
        states = [deployment_state(deployments[n]) for n in wanted if n in deployments]
        if states:
            by_service[service] = st.combined(states)
    return by_service


def secret_value(secret: Manifest | None, name: str, key: str, field: str, what: str) -> st.Problem | str:
    """The value Secret `name` (None: it does not exist) holds under `key`, or the problem with it; `field` is
    where the spec names it, `what` prefixes the reasons."""
    if secret is None:
        return st.Problem(f"{what}SecretMissing", f"Secret {name!r} ({field}) does not exist.")
    encoded = (secret.get("data") or {}).get(key)
    if encoded is None:
        return st.Problem(f"{what}SecretInvalid", f"Secret {name!r} has no key {key!r}.")
    return base64.b64decode(encoded).decode(errors="replace")
