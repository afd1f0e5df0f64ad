"""One reconcile pass for one instance: observe, build the desired state (pure), apply only what differs,
compute the status (pure) and write it only if it changed.

Called by the kopf handlers; knows nothing of kopf. Every pass starts from the cluster and the resource's
status, never from memory, so an operator killed mid-pass resumes where it stopped.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lightkube import ApiError

from ghostpay_operator import analysis, database, keystore, release
from ghostpay_operator import spec as specs
from ghostpay_operator import status as st
from ghostpay_operator.builders import desired as desired_state
from ghostpay_operator.builders import meta, names, rotation, workloads
from ghostpay_operator.kinds import InstanceStatus, Manifest
from ghostpay_operator.kube import Kube
from ghostpay_operator.vocabulary import (
    BLUE,
    COLORS,
    DEGRADED,
    ROLLED_BACK,
    AnalysisVerdict,
    Color,
    Event,
    EventType,
    KeyStoreAction,
    MigrationState,
)

log = logging.getLogger("ghostpay_operator.reconcile")


@dataclass(frozen=True)
class Outcome:
    status: InstanceStatus
    problem: st.Problem | None
    events: list[Event] = field(default_factory=list)


async def _apply_changed(kube: Kube, manifests: list[Manifest], observed: dict[str, dict[str, Manifest]]) -> int:
    """Server-side apply each manifest whose spec hash differs from the live object's; returns how many."""
    applied = 0
    for manifest in manifests:
        live = observed.get(manifest["kind"], {}).get(manifest["metadata"]["name"])
        live_hash = (live or {}).get("metadata", {}).get("annotations", {}).get(meta.SPEC_HASH)
        if live_hash != manifest["metadata"]["annotations"][meta.SPEC_HASH]:
            await kube.apply(manifest)
            applied += 1
    return applied


def _spec_problem(spec: specs.InstanceSpec) -> st.Problem | None:
    """What the CRD's schema cannot refuse but no child object could be made from."""
    if spec.key_rotation is not None and (message := rotation.schedule_problem(spec.key_rotation.schedule)):
        return st.Problem("InvalidSchedule", message)
    return None


async def _secret_value(
    kube: Kube, namespace: str, name: str, key: str, field: str, what: str
) -> tuple[st.Problem | None, str | None]:
    """A problem with a Secret the spec refers to (`field`), or the value it holds; `what` names the reasons."""
    secret = await kube.secret(namespace, name)
    if secret is None:
        return st.Problem(f"{what}SecretMissing", f"Secret {name!r} ({field}) does not exist."), None
    encoded = (secret.get("data") or {}).get(key)
    if encoded is None:
        return st.Problem(f"{what}SecretInvalid", f"Secret {name!r} has no key {key!r}."), None
    return None, base64.b64decode(encoded).decode(errors="replace")


async def _referenced_secrets(kube: Kube, spec: specs.InstanceSpec) -> tuple[st.Problem | None, str | None]:
    """A problem with the database or Redis Secret, or the database's DSN."""
    problem, dsn = await _secret_value(
        kube, spec.namespace, spec.database_secret, spec.database_key, "spec.database.secretRef", "Database"
    )
    if problem is None and spec.redis_secret is not None:
        problem, _ = await _secret_value(
            kube, spec.namespace, spec.redis_secret, spec.redis_key, "spec.redis.secretRef", "Redis"
        )
    return problem, dsn


async def _key_store_plan(
    spec: specs.InstanceSpec, secrets: dict[str, Manifest], dsn: str | None
) -> KeyStoreAction | st.Problem:
    """What to do about the local key store's Secrets; the database is asked only when none of them exists."""
    seen = keystore.Seen(
        passphrase=keystore.passphrase_of(secrets.get(names.key_passphrase_secret(spec.name))),
        parts=frozenset(name for name in names.key_part_secrets(spec.name) if name in secrets),
    )
    if spec.vault is None and not seen.parts and dsn is not None:
        seen = dataclasses.replace(seen, database_holds_local_keys=await database.holds_local_data_keys(dsn))
    return keystore.plan(spec, seen)


async def _make_key_secrets(kube: Kube, spec: specs.InstanceSpec, observed: dict[str, Manifest]) -> None:
    """The passphrase Secret, then the key store's part Secrets encrypted with it: each created once, never
    overwritten (a create, not an apply, so a racing writer cannot replace a passphrase keys are already encrypted
    with)."""
    name = names.key_passphrase_secret(spec.name)
    passphrase = keystore.passphrase_of(observed.get(name))
    if passphrase is None:
        made = keystore.passphrase_secret(spec)
        created = await kube.create(made)
        passphrase = keystore.passphrase_of(made if created else await kube.secret(spec.namespace, name))
    if passphrase is not None:
        for secret in keystore.store_secrets(spec, passphrase):
            await kube.create(secret)


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


SUPPORTING_KINDS = ("ServiceAccount", "ConfigMap", "PodDisruptionBudget", "CronJob")
KEY_ROTATION_ACCESS_KINDS = ("Role", "RoleBinding")  # listed only with spec.keyRotation: they go with the CronJob
ROUTING_AND_WORKLOAD_KINDS = ("Service", "Deployment", "Job")
PROMOTE, ABORT = "ghostpay.io/promote", "ghostpay.io/abort"


async def _observe(kube: Kube, spec: specs.InstanceSpec, full: bool) -> dict[str, dict[str, Manifest]]:
    """What the instance owns, one LIST per kind; a workloads-only pass skips the supporting kinds."""
    kinds: tuple[str, ...] = SUPPORTING_KINDS + ROUTING_AND_WORKLOAD_KINDS if full else ROUTING_AND_WORKLOAD_KINDS
    if full and spec.key_rotation is not None:
        kinds += KEY_ROTATION_ACCESS_KINDS
    observed = {kind: await kube.owned(kind, spec.namespace, spec.name) for kind in kinds}
    if full and spec.vault is None:
        # Secrets are read by name, never listed: the operator's role may not list Secrets.
        observed["Secret"] = {}
        for name in (names.key_passphrase_secret(spec.name), *names.key_part_secrets(spec.name)):
            secret = await kube.secret(spec.namespace, name)
            if secret is not None:
                observed["Secret"][name] = secret
    return observed


def color_state(spec: specs.InstanceSpec, deployments: dict[str, Manifest], color: Color) -> release.ColorState:
    """A colour's template (when all its Deployments agree on one) and whether all its pods are ready."""
    mine = [deployments.get(names.deployment(spec.name, name, color)) for name in specs.SERVICES]
    if any(d is None for d in mine):
        return release.ColorState(None, None, False)
    present = [d for d in mine if d is not None]
    hashes = {d["metadata"].get("annotations", {}).get(workloads.TEMPLATE_HASH) for d in present}
    states = [deployment_state(d) for d in present]
    ready = all(s.rolled_out and s.replicas > 0 for s in states)
    return release.ColorState(hashes.pop() if len(hashes) == 1 else None, states[0].version, ready)


def _deployments_by_service(
    spec: specs.InstanceSpec, deployments: dict[str, Manifest], colors: tuple[Color, ...]
) -> dict[str, st.DeploymentState]:
    """Each service's Deployments of `colors` (those serving traffic), as one."""
    by_service = {}
    for name in specs.SERVICES:
        names = [names.deployment(spec.name, name, color) for color in colors]
        states = [deployment_state(deployments[n]) for n in names if n in deployments]
        if states:
            by_service[name] = st.combined(states)
    return by_service


def _transitions(previous: InstanceStatus, status: InstanceStatus, plan: release.Plan) -> list[Event]:
    """Events worth telling a user: a phase change, with the reason behind it (unless the release said it)."""
    if previous.get("phase") == status["phase"] or plan.events:
        return []
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    source = degraded if degraded["status"] == "True" else progressing
    kind: EventType = "Warning" if status["phase"] in (DEGRADED, ROLLED_BACK) else "Normal"
    return [Event(kind, source["reason"], f"{status['phase']}: {source['message']}")]


def _rotation_events(previous: InstanceStatus, status: InstanceStatus) -> list[Event]:
    """A Warning for each newly failed rotation Job (the condition names it), a Normal event for each success."""
    before = next((c for c in previous.get("conditions", []) if c["type"] == "KeyRotation"), None)
    now = next((c for c in status["conditions"] if c["type"] == "KeyRotation"), None)
    events = []
    if now is not None and now["status"] == "False" and (before is None or before["message"] != now["message"]):
        events.append(Event("Warning", "KeyRotationFailed", now["message"]))
    rotated = status.get("lastKeyRotation")
    if rotated is not None and rotated != previous.get("lastKeyRotation"):
        events.append(Event("Normal", "KeyRotated", f"The signing keys were rotated at {rotated}."))
    return events


async def _apply_key_rotation(
    kube: Kube, spec: specs.InstanceSpec, cronjob: Manifest | None, observed: dict[str, dict[str, Manifest]]
) -> None:
    """The CronJob, then its ServiceAccount, Role and RoleBinding (owned by it, so they need its uid); without
    `spec.keyRotation`, deleting the CronJob takes all of them."""
    name = names.key_rotation_cronjob(spec.name)
    live = observed["CronJob"].get(name)
    if cronjob is None:
        if live is not None:
            await kube.delete_cronjob(spec.namespace, name)
        return
    if (
        live is None
        or live["metadata"].get("annotations", {}).get(meta.SPEC_HASH)
        != cronjob["metadata"]["annotations"][meta.SPEC_HASH]
    ):
        live = await kube.apply(cronjob)
    access = [meta.stamped(m) for m in rotation.access(spec, live["metadata"]["uid"])]
    await _apply_changed(kube, access, observed)


def _without_kopf(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "kopf"}


async def _plan(
    spec: specs.InstanceSpec,
    body: dict[str, Any],
    previous: InstanceStatus,
    observed: dict[str, dict[str, Manifest]],
    migration: MigrationState,
    now: datetime,
) -> release.Plan:
    annotations = body["metadata"].get("annotations") or {}
    colors = {c: color_state(spec, observed["Deployment"], c) for c in COLORS}
    current = release.Release.from_status(previous.get("release"))
    view = release.ReleaseFacts(
        colors=colors,
        migration=migration,
        analysis=await _analysis(spec, current, colors),
        promote=PROMOTE in annotations,
        abort=ABORT in annotations,
    )
    stable = release.stable_color_of(previous.get("activeColor", BLUE), current)  # type: ignore[arg-type]
    return release.decide(spec, workloads.template_hash(spec), stable, current, view, now)


async def _analysis(
    spec: specs.InstanceSpec, current: release.Release | None, colors: dict[Color, release.ColorState]
) -> AnalysisVerdict | None:
    """The new version's error rate against `maxErrorRate`, once its pods are up and a release is under way.
    None (no data yet, or Prometheus unreachable) holds the release; the deadline then rolls it back."""
    url = spec.release.prometheus_url
    if url is None or current is None or current.outcome != "InProgress" or not colors[current.color].ready:
        return None
    return await analysis.measure(url, current.version, spec.release.max_error_rate)


def _consumed_commands(body: dict[str, Any], plan: release.Plan) -> list[str]:
    """Command annotations this pass has acted on: promote once traffic moved, abort once rolled back; either
    also once no release is left to act on."""
    present = [key for key in (PROMOTE, ABORT) if key in (body["metadata"].get("annotations") or {})]
    if plan.release is None or plan.release.outcome == "RolledBack":
        return present
    return [key for key in present if key == PROMOTE and plan.release.switched_at is not None]


async def _apply_workloads(
    kube: Kube, spec: specs.InstanceSpec, desired: desired_state.Desired, observed: dict[str, dict[str, Manifest]]
) -> int:
    changed = await _apply_changed(kube, desired.deployments, observed)
    for name, replicas in desired.scale.items():
        live = observed["Deployment"].get(name)
        if live is not None and live["spec"].get("replicas") != replicas:
            await kube.scale(spec.namespace, name, replicas)
            changed += 1
    return changed


async def _realise(
    kube: Kube,
    spec: specs.InstanceSpec,
    plan: release.Plan,
    observed: dict[str, dict[str, Manifest]],
    migration: MigrationState,
    full: bool,
    key_store: KeyStoreAction,
) -> MigrationState:
    """Apply what differs from the plan's children; returns the migration's state after it."""
    desired = desired_state.desired_children(spec, plan)
    if full:
        if key_store == "make":
            await _make_key_secrets(kube, spec, observed["Secret"])
        await _apply_changed(kube, desired.supporting, observed)
        await _apply_key_rotation(kube, spec, desired.key_rotation, observed)
    if migration == "absent":
        await kube.apply(desired.migration)
        migration = "running"
    if migration == "succeeded" and await _apply_workloads(kube, spec, desired, observed):
        observed["Deployment"] = await kube.owned("Deployment", spec.namespace, spec.name)
    await _apply_changed(kube, desired.routing, observed)
    return migration


async def reconcile(kube: Kube, body: dict[str, Any], now: datetime | None = None, full: bool = True) -> Outcome:
    """A full pass checks and applies everything; a workloads-only pass (`full=False`, after an owned Deployment or
    Job changed) skips the supporting objects (ServiceAccount, ConfigMap, budgets, key Secret)."""
    now = now or datetime.now(UTC)
    spec = specs.parse(body)
    previous: InstanceStatus = _without_kopf(body.get("status") or {})  # type: ignore[assignment]
    observed = await _observe(kube, spec, full)
    secret_problem, dsn = await _referenced_secrets(kube, spec)
    problem = _spec_problem(spec) or secret_problem
    key_store: KeyStoreAction | st.Problem = "ready"
    if full and problem is None:
        key_store = await _key_store_plan(spec, observed.get("Secret", {}), dsn)
        problem = key_store if isinstance(key_store, st.Problem) else None
    migration = migration_state(observed["Job"].get(names.migration_job(spec)))
    plan = await _plan(spec, body, previous, observed, migration, now)
    if problem is None and not isinstance(key_store, st.Problem):
        try:
            migration = await _realise(kube, spec, plan, observed, migration, full, key_store)
        except ApiError as exc:
            if exc.status.code != 422:  # Invalid: retrying the same object cannot help; the user must change the spec
                raise
            problem = st.Problem("ChildRejected", f"The API server refused an object made from this spec: {exc}")
    consumed = _consumed_commands(body, plan)
    if consumed:
        await kube.remove_annotations(spec.namespace, spec.name, consumed)
    deployments = _deployments_by_service(spec, observed["Deployment"], plan.serving_colors)
    active = _deployments_by_service(spec, observed["Deployment"], (plan.active_color,))
    active_version = next((d.version for d in active.values()), None)
    view = st.StatusFacts(migration, deployments, problem, rotation_runs(observed["Job"]), active_version)
    status = st.compute_status(spec, view, previous, now, plan)
    if status != previous:
        await kube.write_status(spec.namespace, spec.name, status, previous)
    events = [*plan.events, *_transitions(previous, status, plan), *_rotation_events(previous, status)]
    return Outcome(status, problem, events)
