"""decide: the pure heart of a reconcile pass. From an `Observation` to the `Actions` that make the cluster match
the spec (what to create, apply, scale and delete, which command annotations to remove: promote, abort, and
rotate-keys, which starts a key-rotation Job from the CronJob now; on a full pass, the rate-limit policy to write
to the instance's Redis), then — given what the API
server answered — the new status and the events (`conclude`).

Composed of the other pure parts: the release state machine (`release.decide`), the desired children
(`builders.desired`), the key store plan (`keystore.plan`) and the status (`status.compute_status`). Only objects
whose spec hash differs from the live one's are written, so an idle pass writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ghostpay_operator import keystore, ratelimits, readings, release
from ghostpay_operator import status as st
from ghostpay_operator.builders import meta, names, rotation, workloads
from ghostpay_operator.builders.desired import desired_children
from ghostpay_operator.kinds import InstanceStatus, Manifest
from ghostpay_operator.readings import Observation, spec_problem
from ghostpay_operator.vocabulary import (
    BLUE,
    COLORS,
    DEGRADED,
    ROLLED_BACK,
    Event,
    EventType,
    KeyStoreAction,
    MigrationState,
)

PROMOTE, ABORT = "ghostpay.io/promote", "ghostpay.io/abort"
ROTATE_KEYS = "ghostpay.io/rotate-keys"  # start a key-rotation Job now (spec.keyRotation), then removed
COMMANDS = (PROMOTE, ABORT, ROTATE_KEYS)


@dataclass(frozen=True)
class Actions:
    """What this pass writes, in no order (`act` owns the order). Empty lists: nothing differs."""

    plan: release.Plan
    problem: st.Problem | None  # set: nothing is written but the status (and consumed command annotations)
    migration: MigrationState  # as observed
    make_key_store: bool = False  # a new local key store: its passphrase (unless one exists) and its parts
    passphrase: str | None = None  # the key store's existing passphrase, when its Secret holds one
    supporting: list[Manifest] = field(default_factory=list)
    cronjob: Manifest | None = None  # the key-rotation CronJob to apply (then its access, which needs its uid)
    cronjob_uid: str | None = None  # the live CronJob's uid, when it is not to be applied
    delete_cronjob: str | None = None
    migration_job: Manifest | None = None  # created when absent; the Deployments wait for it to succeed
    deployments: list[Manifest] = field(default_factory=list)  # on the desired template
    scale: dict[str, int] = field(default_factory=dict)  # Deployment name -> replicas, the other colour
    routing: list[Manifest] = field(default_factory=list)
    rotation_job: Manifest | None = None  # a key-rotation Job to start now (ghostpay.io/rotate-keys)
    remove_annotations: list[str] = field(default_factory=list)
    rate_limits: ratelimits.Write | None = None  # the policy to write to Redis (every full pass: a lost key heals)


@dataclass(frozen=True)
class Answered:
    """What the API server made of the writes, as far as the status needs it."""

    rejected: st.Problem | None = None  # it refused an object (422): the spec must change
    created_migration: bool = False
    deployments: dict[str, Manifest] = field(default_factory=dict)  # by name, as each write answered
    rate_limits: ratelimits.Written | None = None  # what Redis answered the policy write, when there was one


def _live_hash(live: Manifest | None) -> str | None:
    value: str | None = (live or {}).get("metadata", {}).get("annotations", {}).get(meta.SPEC_HASH)
    return value


def changed(obs: Observation, manifests: list[Manifest]) -> list[Manifest]:
    """The manifests whose spec hash differs from the live object's (or that have no live object)."""
    return [
        m
        for m in manifests
        if _live_hash(obs.children.get(m["kind"], {}).get(m["metadata"]["name"]))
        != m["metadata"]["annotations"][meta.SPEC_HASH]
    ]


def _plan(obs: Observation, migration: MigrationState) -> release.Plan:
    spec, annotations = obs.spec, obs.annotations
    deployments = obs.children["Deployment"]
    current = release.Release.from_status(obs.previous.get("release"))
    facts = release.ReleaseFacts(
        colors={c: readings.color_state(spec, deployments, c) for c in COLORS},
        migration=migration,
        analysis=obs.analysis,
        promote=PROMOTE in annotations,
        abort=ABORT in annotations,
    )
    stable = release.stable_color_of(obs.previous.get("activeColor", BLUE), current)  # type: ignore[arg-type]
    return release.decide(spec, workloads.template_hash(spec), stable, current, facts, obs.now)


def consumed_commands(annotations: dict[str, str], plan: release.Plan) -> list[str]:
    """Command annotations this pass has acted on: promote once traffic moved, abort once rolled back; either
    also once no release is left to act on."""
    present = [key for key in (PROMOTE, ABORT) if key in annotations]
    if plan.release is None or plan.release.outcome == ROLLED_BACK:
        return present
    return [key for key in present if key == PROMOTE and plan.release.switched_at is not None]


def decide(obs: Observation) -> Actions:
    spec = obs.spec
    migration = readings.migration_state(obs.children["Job"].get(names.migration_job(spec)))
    plan = _plan(obs, migration)
    problem = spec_problem(spec) or obs.referenced_problem
    key_store: KeyStoreAction | st.Problem = "ready"
    passphrase = keystore.passphrase_of(obs.key_secrets.get(names.key_passphrase_secret(spec.name)))
    if obs.full and problem is None:
        seen = keystore.Seen(
            passphrase=passphrase,
            parts=frozenset(name for name in names.key_part_secrets(spec.name) if name in obs.key_secrets),
            database_holds_local_keys=obs.database_holds_local_keys,
        )
        key_store = keystore.plan(spec, seen)
        problem = key_store if isinstance(key_store, st.Problem) else None
    remove = consumed_commands(obs.annotations, plan)
    if problem is not None:
        return Actions(plan=plan, problem=problem, migration=migration, remove_annotations=remove)
    desired = desired_children(spec, plan)
    actions = Actions(
        plan=plan,
        problem=None,
        migration=migration,
        migration_job=desired.migration if migration == "absent" else None,
        routing=changed(obs, desired.routing),
        remove_annotations=remove,
    )
    if migration == "succeeded":
        live = obs.children["Deployment"]
        scale = {n: r for n, r in desired.scale.items() if n in live and live[n]["spec"].get("replicas") != r}
        actions = replace(actions, deployments=changed(obs, desired.deployments), scale=scale)
    if not obs.full:
        return actions
    actions = replace(
        actions,
        make_key_store=key_store == "make",
        passphrase=passphrase,
        supporting=changed(obs, [*desired.supporting, *(desired.monitoring if obs.prometheus_operator else [])]),
        rate_limits=_rate_limits(obs),
    )
    cronjob_name = names.key_rotation_cronjob(spec.name)
    live_cronjob = obs.children["CronJob"].get(cronjob_name)
    asked = ROTATE_KEYS in obs.annotations
    if desired.key_rotation is None:
        # Deleting the CronJob takes its ServiceAccount, Role and RoleBinding (it owns them). A rotation asked for
        # without spec.keyRotation has nothing to run: the request is dropped, not kept pending for ever.
        return replace(
            actions,
            delete_cronjob=cronjob_name if live_cronjob is not None else None,
            remove_annotations=[*remove, ROTATE_KEYS] if asked else remove,
        )
    if live_cronjob is None or changed(obs, [desired.key_rotation]):
        return replace(actions, cronjob=desired.key_rotation)  # a rotation asked for starts once it is in place
    uid = live_cronjob["metadata"]["uid"]
    actions = replace(actions, cronjob_uid=uid)
    if not asked or readings.rotation_running(obs.children["Job"]):
        return actions  # one rotation at a time (the CronJob's concurrencyPolicy: Forbid): asked, it waits
    job = rotation.job_now(desired.key_rotation, uid, obs.now)
    return replace(actions, rotation_job=job, remove_annotations=[*remove, ROTATE_KEYS])


def _rate_limits(obs: Observation) -> ratelimits.Write | None:
    spec, url = obs.spec, obs.redis_url
    if url is None:
        return None
    write = ratelimits.Write("", ratelimits.policy_key(spec), ratelimits.document(spec), spec.generation)
    if isinstance(url, st.Problem):
        return replace(write, unusable=(url.reason, url.message))
    return replace(write, url=url)


def rate_limits_status(
    obs: Observation, status: InstanceStatus, write: ratelimits.Write | None, written: ratelimits.Written | None
) -> tuple[InstanceStatus, list[Event]]:
    """The `RateLimitsApplied` condition (and `rateLimitsGeneration`) from what Redis answered the policy write;
    a pass that wrote none keeps the previous condition as it was."""
    before = next((c for c in obs.previous.get("conditions", []) if c["type"] == ratelimits.CONDITION), None)
    others = [c for c in status["conditions"] if c["type"] != ratelimits.CONDITION]
    if write is None or written is None:
        return {**status, "conditions": [*others, *([before] if before else [])]}, []
    state = ratelimits.written_state(write, written)
    condition = st.condition(obs.previous.get("conditions", []), ratelimits.CONDITION, state, write.generation, obs.now)
    status = {**status, "conditions": [*others, condition]}
    if written.ok:
        status["rateLimitsGeneration"] = write.generation
    return status, ratelimits.events(before, write, written)


def key_rotation_access(obs: Observation, cronjob_uid: str) -> list[Manifest]:
    """The key-rotation Job's ServiceAccount, Role and RoleBinding that differ from the live ones: owned by the
    CronJob, so they can be built only once its uid is known (after it is applied, for a new one)."""
    access = [meta.stamped(m) for m in rotation.access(obs.spec, cronjob_uid)]
    return changed(obs, access)


def _transitions(previous: InstanceStatus, status: InstanceStatus, plan: release.Plan) -> list[Event]:
    """Events worth telling a user: a phase change, with the reason behind it (unless the release said it)."""
    if previous.get("phase") == status["phase"] or plan.events:
        return []
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    source = degraded if degraded["status"] == "True" else progressing
    event_type: EventType = "Warning" if status["phase"] in (DEGRADED, ROLLED_BACK) else "Normal"
    return [Event(event_type, source["reason"], f"{status['phase']}: {source['message']}")]


def rotation_events(previous: InstanceStatus, status: InstanceStatus) -> list[Event]:
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


def conclude(obs: Observation, actions: Actions, answered: Answered) -> tuple[InstanceStatus, list[Event]]:
    """The new status and the events of the pass, from the observation and what the API server answered: the
    Deployments just written are taken as the writes returned them (a new generation not yet rolled out)."""
    spec, plan, previous = obs.spec, actions.plan, obs.previous
    problem = actions.problem or answered.rejected
    # A refused write leaves the migration as observed (as the pass's earlier form did), even if its Job was made.
    created = answered.created_migration and answered.rejected is None
    migration: MigrationState = "running" if created else actions.migration
    deployments = {**obs.children["Deployment"], **answered.deployments}
    active = readings.deployments_by_service(spec, deployments, (plan.active_color,))
    facts = st.StatusFacts(
        migration=migration,
        deployments=readings.deployments_by_service(spec, deployments, plan.serving_colors),
        problem=problem,
        rotations=readings.rotation_runs(obs.children["Job"]),
        active_version=next((d.version for d in active.values()), None),
    )
    status = st.compute_status(spec, facts, previous, obs.now, plan)
    status, limits_events = rate_limits_status(obs, status, actions.rate_limits, answered.rate_limits)
    started = []
    if actions.rotation_job is not None and answered.rejected is None:
        name = actions.rotation_job["metadata"]["name"]
        started = [Event("Normal", "KeyRotationStarted", f"Started key rotation Job {name} ({ROTATE_KEYS}).")]
    events = [
        *plan.events,
        *_transitions(previous, status, plan),
        *rotation_events(previous, status),
        *started,
        *limits_events,
    ]
    return status, events
