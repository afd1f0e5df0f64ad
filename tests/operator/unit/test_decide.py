"""Table tests of `decide`: a reconcile pass's behaviours from a made-up observation, in milliseconds, no cluster.

`_converge` plays the API server: it applies a pass's actions to the observed children (every pod ready at once,
the migration Job succeeded) until a pass writes nothing. The cluster tests keep what needs a real API server.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ghostpay_operator import decide as decisions
from ghostpay_operator import ratelimits
from ghostpay_operator import spec as specs
from ghostpay_operator.builders import names
from ghostpay_operator.decide import ABORT, PROMOTE, ROTATE_KEYS, Actions, Answered
from ghostpay_operator.readings import Observation
from ghostpay_operator.status import Problem
from ghostpay_operator.vocabulary import AnalysisResult
from tests.operator.support.samples import body

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = ("ServiceAccount", "ConfigMap", "PodDisruptionBudget", "CronJob", "Service", "Deployment", "Job")


def _observation(instance: dict[str, Any] | None = None, **changes: Any) -> Observation:
    instance = instance or body()
    spec = specs.parse(instance)
    fields: dict[str, Any] = {
        "body": instance,
        "spec": spec,
        "previous": {},
        "full": True,
        "children": {kind: {} for kind in (*KINDS, "Role", "RoleBinding")},
        "key_secrets": {},
        "referenced_problem": None,
        "database_holds_local_keys": False,
        "analysis": None,
        "now": T0,
    }
    return Observation(**{**fields, **changes})


def _live(manifest: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    """The object as the API server has it once its controller is done: pods ready, Jobs succeeded."""
    obj = {**manifest, "metadata": {**manifest["metadata"], "uid": f"uid-{manifest['metadata']['name']}"}}
    obj["metadata"]["generation"] = generation
    if obj["kind"] == "Deployment":
        n = obj["spec"]["replicas"]
        obj["status"] = {"readyReplicas": n, "updatedReplicas": n, "observedGeneration": generation}
    if obj["kind"] == "Job":
        obj["status"] = {"succeeded": 1}
    return obj


def _secret(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def _writes(actions: Actions) -> list[str]:
    """Every write an Actions holds, as `Kind/name` (or `scale/name`)."""
    out = [
        f"{m['kind']}/{m['metadata']['name']}" for m in (*actions.supporting, *actions.deployments, *actions.routing)
    ]
    out += [f"scale/{name}" for name in actions.scale]
    if actions.migration_job is not None:
        out.append(f"Job/{actions.migration_job['metadata']['name']}")
    if actions.cronjob is not None:
        out.append("CronJob/" + actions.cronjob["metadata"]["name"])
    if actions.delete_cronjob:
        out.append("delete/" + actions.delete_cronjob)
    if actions.make_key_store:
        out.append("key-store")
    return out


def _step(obs: Observation) -> tuple[Observation, Actions]:
    """One pass: decide, apply what it says as a well-behaved API server would, conclude; the next observation."""
    actions = decisions.decide(obs)
    children = {kind: dict(objects) for kind, objects in obs.children.items()}
    for manifest in (*actions.supporting, *actions.deployments, *actions.routing):
        children[manifest["kind"]][manifest["metadata"]["name"]] = _live(manifest)
    for name, replicas in actions.scale.items():
        live = children["Deployment"][name]
        children["Deployment"][name] = _live({**live, "spec": {**live["spec"], "replicas": replicas}})
    if actions.migration_job is not None:
        children["Job"][actions.migration_job["metadata"]["name"]] = _live(actions.migration_job)
    if actions.cronjob is not None:
        children["CronJob"][actions.cronjob["metadata"]["name"]] = _live(actions.cronjob)
    key_secrets = dict(obs.key_secrets)
    if actions.make_key_store:
        key_secrets[names.key_passphrase_secret(obs.spec.name)] = _secret("p", passphrase="s3cret")
        key_secrets.update({name: _secret(name) for name in names.key_part_secrets(obs.spec.name)})
    status, _ = decisions.conclude(obs, actions, Answered())
    return replace(obs, children=children, key_secrets=key_secrets, previous=status), actions


def _converge(obs: Observation, passes: int = 6) -> Observation:
    for _ in range(passes):
        obs, actions = _step(obs)
        if not _writes(actions):
            return obs
    raise AssertionError("no convergence")


def _status(obs: Observation, answered: Answered | None = None) -> tuple[dict[str, Any], list[Any]]:
    status, events = decisions.conclude(obs, decisions.decide(obs), answered or Answered())
    return dict(status), events


def _condition(status: dict[str, Any], kind: str) -> tuple[str, str]:
    found = next(c for c in status["conditions"] if c["type"] == kind)
    return found["status"], found["reason"]


# --- a first install, migration gating, idleness ------------------------------------------------------------------


def test_a_first_pass_makes_the_key_store_the_supporting_objects_the_migration_and_the_services_only() -> None:
    actions = decisions.decide(_observation())
    writes = _writes(actions)
    assert "key-store" in writes and "ConfigMap/payments-config" in writes
    assert actions.migration_job is not None and actions.deployments == [] and actions.scale == {}
    assert {w for w in writes if w.startswith("Service/")} == {
        f"Service/payments-{s}{p}" for s in specs.SERVICES for p in ("", "-preview")
    }
    status, events = decisions.conclude(_observation(), actions, Answered(created_migration=True))
    assert (status["phase"], _condition(dict(status), "Progressing")) == ("Pending", ("True", "MigrationRunning"))
    assert [(e.type, e.reason) for e in events] == [("Normal", "MigrationRunning")]


@pytest.mark.parametrize(("migration", "deploys"), [("running", False), ("failed", False), ("succeeded", True)])
def test_deployments_wait_for_the_migration_to_succeed(migration: str, deploys: bool) -> None:
    obs = _observation()
    job = _live(decisions.desired_children(obs.spec, decisions.decide(obs).plan).migration)
    job["status"] = {
        "running": {"active": 1},
        "failed": {"conditions": [{"type": "Failed", "status": "True"}]},
        "succeeded": {"succeeded": 1},
    }[migration]
    actions = decisions.decide(replace(obs, children={**obs.children, "Job": {job["metadata"]["name"]: job}}))
    assert actions.migration_job is None
    assert bool(actions.deployments) is deploys


def test_a_converged_instance_is_healthy_and_an_idle_pass_writes_nothing() -> None:
    obs = _converge(_observation())
    actions = decisions.decide(obs)
    assert _writes(actions) == [] and actions.remove_annotations == []
    status, events = _status(obs)
    assert status == obs.previous and status["phase"] == "Healthy" and events == []
    assert decisions.decide(replace(obs, full=False)) == replace(actions, make_key_store=False, passphrase=None)


# --- problems: Degraded, then recovery ------------------------------------------------------------------------------


def test_a_missing_database_secret_is_degraded_and_nothing_is_written() -> None:
    problem = Problem("DatabaseSecretMissing", "Secret 'payments-db' (spec.database.secretRef) does not exist.")
    obs = _observation(referenced_problem=problem)
    actions = decisions.decide(obs)
    assert actions.problem == problem and _writes(actions) == []
    status, events = _status(obs)
    assert (status["phase"], _condition(status, "Degraded")) == ("Degraded", ("True", "DatabaseSecretMissing"))
    assert [(e.type, e.reason) for e in events] == [("Warning", "DatabaseSecretMissing")]


def test_a_refused_child_is_degraded_and_the_next_pass_recovers() -> None:
    healthy = _converge(_observation())
    rejected = Answered(rejected=Problem("ChildRejected", "The API server refused an object made from this spec"))
    degraded, events = _status(healthy, rejected)
    assert (degraded["phase"], _condition(degraded, "Degraded")) == ("Degraded", ("True", "ChildRejected"))
    assert [(e.type, e.reason) for e in events] == [("Warning", "ChildRejected")]
    recovered, events = _status(replace(healthy, previous=degraded))  # type: ignore[arg-type]
    assert recovered["phase"] == "Healthy" and _condition(recovered, "Degraded") == ("False", "AsExpected")
    assert [(e.type, e.reason) for e in events] == [("Normal", "ReleaseComplete")]


def test_an_invalid_schedule_is_degraded() -> None:
    obs = _observation(body(keyRotation={"schedule": "99 99 * * *", "gracePeriod": "24h"}))
    assert decisions.decide(obs).problem.reason == "InvalidSchedule"  # type: ignore[union-attr]


# --- the key store ------------------------------------------------------------------------------------------------


def _parts(obs: Observation, *which: str) -> dict[str, Any]:
    return {n: _secret(n) for n in names.key_part_secrets(obs.spec.name) if n.rsplit("-", 1)[1] in which}


@pytest.mark.parametrize(
    ("parts", "passphrase", "database", "outcome"),
    [
        ((), False, False, "make"),
        ((), False, None, "make"),  # nothing shows a store was ever made
        ((), True, None, "KeySecretMissing"),  # the passphrase shows one was, and the database cannot say
        ((), False, True, "KeySecretMissing"),  # card data depends on a store that is gone
        (("public",), True, False, "KeySecretMissing"),  # part of a store is gone
        (("public", "signing", "pan"), False, False, "KeyPassphraseMissing"),
        (("public", "signing", "pan"), True, False, "ready"),
    ],
)
def test_key_store_plan_outcomes(parts: tuple[str, ...], passphrase: bool, database: bool | None, outcome: str) -> None:
    obs = _observation(database_holds_local_keys=database)
    secrets = _parts(obs, *parts)
    if passphrase:
        secrets[names.key_passphrase_secret("payments")] = _secret("p", passphrase="s3cret")
    actions = decisions.decide(replace(obs, key_secrets=secrets))
    if outcome in ("make", "ready"):
        assert actions.problem is None and actions.make_key_store is (outcome == "make")
    else:
        assert actions.problem is not None and actions.problem.reason == outcome and _writes(actions) == []


def test_a_workloads_only_pass_leaves_the_key_store_and_supporting_objects_alone() -> None:
    obs = _observation(full=False, children={kind: {} for kind in ("Service", "Deployment", "Job")})
    actions = decisions.decide(obs)
    assert not actions.make_key_store and actions.supporting == [] and actions.cronjob is None
    assert actions.migration_job is not None and actions.routing


# --- key rotation -------------------------------------------------------------------------------------------------

ROTATING = {"schedule": "0 3 * * *", "gracePeriod": "24h"}


def _rotation_job(name: str, condition: str, at: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/component": "key-rotation"}},
        "status": {"conditions": [{"type": condition, "status": "True", "lastTransitionTime": at}]},
    }


def test_key_rotation_cronjob_is_made_and_removed_with_the_spec() -> None:
    obs = _converge(_observation(body(keyRotation=ROTATING)))
    assert "payments-key-rotation" in obs.children["CronJob"]
    assert decisions.decide(obs).cronjob_uid == "uid-payments-key-rotation"
    access = decisions.key_rotation_access(obs, "uid-payments-key-rotation")
    assert [m["kind"] for m in access] == ["ServiceAccount", "Role", "RoleBinding"]
    without = replace(obs, body=body(), spec=specs.parse(body()))
    assert decisions.decide(without).delete_cronjob == "payments-key-rotation"


def test_key_rotation_runs_set_the_status_and_post_events() -> None:
    obs = _converge(_observation(body(keyRotation=ROTATING)))
    jobs = dict(obs.children["Job"])
    jobs["payments-key-rotation-1"] = _rotation_job("payments-key-rotation-1", "Complete", "2026-01-01T03:00:05Z")
    rotated_obs = replace(obs, children={**obs.children, "Job": jobs})
    rotated, events = _status(rotated_obs)
    assert rotated["lastKeyRotation"] == "2026-01-01T03:00:05Z"
    assert _condition(rotated, "KeyRotation") == ("True", "Rotated")
    assert [(e.type, e.reason) for e in events] == [("Normal", "KeyRotated")]
    jobs["payments-key-rotation-2"] = _rotation_job("payments-key-rotation-2", "Failed", "2026-01-02T03:00:05Z")
    failed, events = _status(replace(rotated_obs, previous=rotated))  # type: ignore[arg-type]
    assert _condition(failed, "KeyRotation") == ("False", "RotationFailed") and failed["phase"] == "Healthy"
    assert [(e.type, e.reason) for e in events] == [("Warning", "KeyRotationFailed")]


def _annotated(obs: Observation, *keys: str) -> Observation:
    return replace(obs, body={**obs.body, "metadata": {**obs.body["metadata"], "annotations": dict.fromkeys(keys, "")}})


def test_rotate_keys_starts_a_rotation_job_from_the_cronjob_now_and_the_annotation_is_consumed() -> None:
    obs = _converge(_observation(body(keyRotation=ROTATING)))
    assert decisions.decide(obs).rotation_job is None  # nothing asked
    asked = replace(_annotated(obs, ROTATE_KEYS), now=datetime(2026, 1, 1, 12, 30, 15, tzinfo=UTC))
    actions = decisions.decide(asked)
    job = actions.rotation_job
    assert job is not None and actions.remove_annotations == [ROTATE_KEYS]
    cronjob = obs.children["CronJob"]["payments-key-rotation"]
    # Named as the CronJob names its Jobs (minutes since the epoch), its template, owned by the CronJob.
    assert job["metadata"]["name"] == f"payments-key-rotation-{int(asked.now.timestamp()) // 60}"
    assert job["spec"] == cronjob["spec"]["jobTemplate"]["spec"]
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "key-rotation"
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": "payments-key-rotation",
            "uid": "uid-payments-key-rotation",
            "controller": True,
        }
    ]
    _, events = decisions.conclude(asked, actions, Answered())
    assert ("Normal", "KeyRotationStarted") in [(e.type, e.reason) for e in events]


def test_rotate_keys_waits_while_a_rotation_runs_and_is_dropped_without_key_rotation() -> None:
    obs = _converge(_observation(body(keyRotation=ROTATING)))
    running = {
        "metadata": {"name": "payments-key-rotation-9", "labels": {"app.kubernetes.io/component": "key-rotation"}}
    }
    busy = replace(
        _annotated(obs, ROTATE_KEYS), children={**obs.children, "Job": {**obs.children["Job"], "r": running}}
    )
    actions = decisions.decide(busy)
    assert (actions.rotation_job, actions.remove_annotations) == (None, [])  # kept: it starts after this one
    done = _rotation_job("payments-key-rotation-9", "Complete", "2026-01-01T03:00:05Z")
    finished = replace(busy, children={**obs.children, "Job": {**obs.children["Job"], "r": done}})
    assert decisions.decide(finished).rotation_job is not None
    without = _annotated(replace(obs, body=body(), spec=specs.parse(body())), ROTATE_KEYS)
    actions = decisions.decide(without)
    assert (actions.rotation_job, actions.remove_annotations) == (None, [ROTATE_KEYS])


# --- releases: commands, analysis, scale-down ---------------------------------------------------------------------


def _pass(obs: Observation, at: float, **changes: Any) -> tuple[Actions, dict[str, Any], list[Any]]:
    obs = replace(obs, now=T0 + timedelta(seconds=at), **changes)
    actions = decisions.decide(obs)
    status, events = decisions.conclude(obs, actions, Answered())
    return actions, dict(status), events


def _up(spec_changes: dict[str, Any], annotations: dict[str, str] | None = None) -> Observation:
    """The new colour up and ready, the release waiting (for promotion, or analysis)."""
    stable = _converge(_observation())
    newer = body(version="2.0.0", **spec_changes)
    newer["metadata"]["annotations"] = annotations or {}
    obs = replace(stable, body=newer, spec=specs.parse(newer))
    for _ in range(3):
        obs, _actions = _step(obs)
    return obs


def test_promote_switches_traffic_and_the_annotation_is_consumed() -> None:
    paused = _up({"release": {"autoPromotion": False}})
    assert decisions.decide(paused).plan.phase == "Paused"
    assert paused.previous["phase"] == "Progressing"  # the status has no Paused phase: a paused release progresses
    promoted = replace(
        paused, body={**paused.body, "metadata": {**paused.body["metadata"], "annotations": {PROMOTE: ""}}}
    )
    actions, status, events = _pass(promoted, 5)
    assert actions.plan.reason == "Switched" and actions.remove_annotations == [PROMOTE]
    assert status["activeColor"] == "green" and ("Normal", "Switched") in [(e.type, e.reason) for e in events]
    assert decisions.decide(paused).remove_annotations == []  # nothing to consume without the annotation


def test_abort_rolls_back_and_the_annotation_is_consumed() -> None:
    paused = _up({"release": {"autoPromotion": False}})
    aborted = replace(paused, body={**paused.body, "metadata": {**paused.body["metadata"], "annotations": {ABORT: ""}}})
    actions, status, events = _pass(aborted, 5)
    assert actions.plan.reason == "Aborted" and actions.remove_annotations == [ABORT]
    assert status["phase"] == "RolledBack" and [(e.type, e.reason) for e in events] == [("Warning", "Aborted")]
    assert actions.scale == {f"payments-{s}-green": 0 for s in specs.SERVICES}


DECLINES = "2.0.0 declined 100.0% of its charges against 1.0% for 1.0.0: more than maxDeclineRateIncrease 0.05."
SLOW = "The charge p99 of 2.0.0 was 900 ms against 20 ms for 1.0.0: more than maxChargeP99Ratio 2 times it."


@pytest.mark.parametrize(
    ("analysis", "at", "reason", "phase"),
    [
        (None, 10, "Analyzing", "Progressing"),
        (None, 301, "AnalysisInconclusive", "RolledBack"),  # no data by the progress deadline
        (AnalysisResult("fail", "error_rate", "5xx"), 10, "AnalysisFailed", "RolledBack"),
        (AnalysisResult("fail", "decline_rate", DECLINES), 10, "AnalysisFailed", "RolledBack"),  # no 5xx at all
        (AnalysisResult("fail", "charge_p99", SLOW), 10, "AnalysisFailed", "RolledBack"),
        (AnalysisResult("pass", "all", "fine"), 10, "Switched", "Progressing"),
    ],
)
def test_analysis_holds_fails_or_passes_a_release(
    analysis: AnalysisResult | None, at: float, reason: str, phase: str
) -> None:
    up = _up({"release": {"analysis": {"prometheusUrl": "http://prometheus:9090"}}})
    actions, status, events = _pass(up, at, analysis=analysis)
    assert (actions.plan.reason, status["phase"]) == (reason, phase)
    if analysis is not None and analysis.verdict == "fail":
        # The failed check's sentence is what the user reads: in the Degraded condition and the Warning event.
        degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
        assert degraded["message"] == analysis.message
        assert ("Warning", "AnalysisFailed", analysis.message) in [tuple(e) for e in events]
        assert status["release"]["outcome"] == "RolledBack" and status["activeColor"] == "blue"


def test_the_old_colour_is_scaled_down_after_the_delay() -> None:
    switched = _up({})  # switched at T0, as soon as the new colour was ready
    assert switched.previous["activeColor"] == "green"
    during, _, _ = _pass(switched, 29)
    assert during.scale == {} and during.plan.reason == "ScalingDown"
    after, _status_after, events = _pass(switched, 30)
    assert after.scale == {f"payments-{s}-blue": 0 for s in specs.SERVICES}
    assert after.plan.reason == "ReleaseComplete" and ("Normal", "ReleaseComplete") in [
        (e.type, e.reason) for e in events
    ]


# --- canary: each step held from when all its pods are Ready ------------------------------------------------------

CANARY = {"strategy": "Canary", "canarySteps": [10, 50, 100], "stepSeconds": 20}
FOUR_CHARGES = {"charges": {"replicas": 4}}  # the steps are 1, 2 and 4 pods of 4


def _canary_moved_to_50() -> Observation:
    """A canary that has just moved to its 50% step at T0+20 s: the status says so, and the children are as the
    pass that moved it wrote them (every pod ready at once)."""
    stable = _converge(_observation(body(services=FOUR_CHARGES)))
    newer = body(version="2.0.0", release=CANARY, services=FOUR_CHARGES)
    obs = replace(stable, body=newer, spec=specs.parse(newer))
    for _ in range(3):  # the migration, the 10% step's pods, then those pods Ready
        obs, _actions = _step(obs)
    obs, actions = _step(replace(obs, now=T0 + timedelta(seconds=20)))
    assert actions.plan.release is not None and actions.plan.release.step == 1
    return obs


def _charges_green(obs: Observation, replicas: int, ready: int, observed: int = 2) -> Observation:
    """`obs` with the new colour's charges Deployment read as given (generation 2: the one the 50% step wrote)."""
    name = "payments-charges-green"
    live = obs.children["Deployment"][name]
    read = {
        **live,
        "metadata": {**live["metadata"], "generation": 2 if replicas == 2 else 1},
        "spec": {**live["spec"], "replicas": replicas},
        "status": {"readyReplicas": ready, "updatedReplicas": replicas, "observedGeneration": observed},
    }
    return replace(obs, children={**obs.children, "Deployment": {**obs.children["Deployment"], name: read}})


@pytest.mark.parametrize(
    ("replicas", "ready", "observed", "counted"),
    [
        (1, 1, 1, False),  # a read from before the step's resize (the watch behind the write): the 10% step's pods
        (2, 1, 2, False),  # the second pod still starting
        (2, 2, 1, False),  # the controller has not yet observed the resize
        (2, 2, 2, True),  # every pod of the 50% step Ready: the hold starts now
    ],
)
def test_a_canary_step_is_held_from_when_all_its_pods_are_ready(
    replicas: int, ready: int, observed: int, counted: bool
) -> None:
    moved = _canary_moved_to_50()
    actions, status, _ = _pass(_charges_green(moved, replicas, ready, observed), 30)
    assert (actions.plan.release is not None and actions.plan.release.step) == 1 and actions.scale == {}
    assert status["release"].get("step_ready_at") == ("2026-01-01T00:00:30Z" if counted else None)


def test_a_canary_step_moves_on_step_seconds_after_its_pods_are_ready_not_after_its_start() -> None:
    ready = replace(_canary_moved_to_50(), now=T0 + timedelta(seconds=30))
    ready = replace(ready, previous=_status(ready)[0])  # the 50% step's pods Ready 10 s after it started
    held, _, _ = _pass(ready, 49)  # 29 s after the step's start, 19 s after its pods were Ready
    assert held.plan.share == {"green": 0.5, "blue": 0.5} and held.scale == {}
    moved, status, _ = _pass(ready, 50)
    assert moved.plan.share == {"green": 1.0, "blue": 0.0} and status["release"]["step"] == 2
    assert moved.scale == {f"payments-{s}-blue": 0 for s in specs.SERVICES}


# --- the vocabulary -----------------------------------------------------------------------------------------------


def test_a_plan_is_built_by_keyword_only() -> None:
    """Positional construction (once seven places, one reading `new, new, new`) is refused: two colour fields
    of one type are kept apart by their names alone."""
    fields: list[Any] = ["blue", {"blue": 1.0}, "blue", "blue", None, None, "Healthy", "ReleaseComplete", ""]
    with pytest.raises(TypeError):
        decisions.release.Plan(*fields)


def test_events_are_named_records_that_still_compare_as_triples() -> None:
    event = decisions.Event("Warning", "Aborted", "The release was aborted.")
    assert (event.type, event.reason, event.message) == event == ("Warning", "Aborted", "The release was aborted.")


# --- rate limits written into Redis (issue 16) ---------------------------------------------------------------------

REDIS = "redis://:pw@redis.shop:6379/0"


def _limits_pass(
    obs: Observation, written: ratelimits.Written | None
) -> tuple[Actions, dict[str, Any], list[tuple[str, str]]]:
    actions = decisions.decide(obs)
    status, events = decisions.conclude(obs, actions, Answered(rate_limits=written))
    return actions, dict(status), [(e.type, e.reason) for e in events]


def test_a_full_pass_writes_the_policy_to_the_instances_own_redis_with_the_generation() -> None:
    obs = _observation(body(rateLimits={"merchant": {"requestsPerSecond": 5, "burst": 10}}), redis_url=REDIS)
    write = decisions.decide(obs).rate_limits
    assert write is not None and (write.url, write.key, write.generation) == (
        REDIS,
        "ghostpay:ratelimits:shop:payments",
        3,
    )
    document = json.loads(write.document)
    assert document["generation"] == 3
    assert document["limits"]["merchant"] == {"requestsPerSecond": 5, "burst": 10}
    assert document["limits"]["user"] == {"requestsPerSecond": 10, "burst": 20}  # left out: the default
    assert decisions.decide(replace(obs, full=False)).rate_limits is None  # workloads-only passes leave Redis alone


@pytest.mark.parametrize(
    ("before", "written", "condition", "events"),
    [
        (None, ratelimits.Written(ok=True), ("True", "Applied"), [("Normal", "RateLimitsApplied")]),
        ("same", ratelimits.Written(ok=True, previous="same"), ("True", "Applied"), []),  # a resync: no event
        ("same", ratelimits.Written(ok=True), ("True", "Applied"), [("Normal", "RateLimitsApplied")]),  # restored
        (
            None,
            ratelimits.Written(False, None, "RedisUnreachable", "ConnectionError: refused"),
            ("False", "RedisUnreachable"),
            [("Warning", "RateLimitsNotApplied")],
        ),
        (
            "failed",
            ratelimits.Written(False, None, "RedisUnreachable", "ConnectionError: refused"),
            ("False", "RedisUnreachable"),
            [],
        ),  # still failing: said once
    ],
)
def test_rate_limits_applied_condition_and_events(
    before: str | None, written: ratelimits.Written, condition: tuple[str, str], events: list[tuple[str, str]]
) -> None:
    obs = _converge(_observation(redis_url=REDIS))
    write = decisions.decide(obs).rate_limits
    assert write is not None
    if before == "same":
        written = replace(written, previous=write.document) if written.previous else written
        obs = replace(obs, previous=_limits_pass(obs, ratelimits.Written(ok=True))[1])
    if before == "failed":
        obs = replace(obs, previous=_limits_pass(obs, written)[1])
    _, status, posted = _limits_pass(obs, written)
    assert _condition(status, "RateLimitsApplied") == condition
    assert [e for e in posted if e[1].startswith("RateLimits")] == events
    assert status["phase"] == "Healthy"  # the instance keeps serving either way
    if written.ok:
        assert status["rateLimitsGeneration"] == 3


def test_a_failed_write_keeps_the_last_applied_generation_and_a_later_pass_recovers() -> None:
    obs = _converge(_observation(redis_url=REDIS))
    obs = replace(obs, previous=_limits_pass(obs, ratelimits.Written(ok=True))[1])
    changed = body(rateLimits={"merchant": {"requestsPerSecond": 1, "burst": 1}})
    changed["metadata"]["generation"] = 4
    obs = replace(obs, body=changed, spec=specs.parse(changed))
    failed = ratelimits.Written(False, None, "RedisRefused", "AuthenticationError: invalid password")
    _, status, _ = _limits_pass(obs, failed)
    assert _condition(status, "RateLimitsApplied") == ("False", "RedisRefused")
    assert status["rateLimitsGeneration"] == 3 and "generation 4" in status["conditions"][-1]["message"]
    obs = replace(obs, previous=status)
    _, status, posted = _limits_pass(obs, ratelimits.Written(ok=True))
    assert _condition(status, "RateLimitsApplied") == ("True", "Applied") and status["rateLimitsGeneration"] == 4
    assert ("Normal", "RateLimitsApplied") in posted


def test_a_pass_that_writes_no_policy_keeps_the_condition_as_it_was() -> None:
    obs = _converge(_observation(redis_url=REDIS))
    obs = replace(obs, previous=_limits_pass(obs, ratelimits.Written(ok=True))[1])
    before = next(c for c in obs.previous["conditions"] if c["type"] == "RateLimitsApplied")
    _, status, posted = _limits_pass(replace(obs, full=False), None)
    assert next(c for c in status["conditions"] if c["type"] == "RateLimitsApplied") == before
    assert not [e for e in posted if e[1].startswith("RateLimits")]


def test_changing_only_the_rate_limits_writes_the_configmap_but_starts_no_release() -> None:
    """Issue 16: the ConfigMap gets the new start-up defaults, no Deployment is written, no release starts."""
    obs = _converge(_observation(redis_url=REDIS))
    changed = body(rateLimits={"merchant": {"requestsPerSecond": 1, "burst": 1}})
    changed["metadata"]["generation"] = 4
    actions = decisions.decide(replace(obs, body=changed, spec=specs.parse(changed)))
    assert _writes(actions) == ["ConfigMap/payments-config"]
    assert actions.plan.release is None
    assert actions.rate_limits is not None and json.loads(actions.rate_limits.document)["generation"] == 4


def test_a_missing_operator_redis_secret_is_a_false_condition_and_nothing_else_stops() -> None:
    missing = Problem("RedisSecretMissing", "Secret 'payments-redis-operator' does not exist.")
    obs = _converge(_observation(redis_url=missing))
    actions = decisions.decide(obs)
    assert actions.rate_limits is not None and actions.problem is None
    written = ratelimits.unusable(actions.rate_limits)  # what act answers, without asking Redis
    assert written is not None
    status, events = decisions.conclude(obs, actions, Answered(rate_limits=written))
    assert _condition(dict(status), "RateLimitsApplied") == ("False", "RedisSecretMissing")
    assert status["phase"] == "Healthy" and ("Warning", "RateLimitsNotApplied") in [(e.type, e.reason) for e in events]


def test_the_operator_secret_ref_is_parsed() -> None:
    parsed = specs.parse(body(redis={"url": "redis://r:6379/0", "operatorSecretRef": {"name": "op"}}))
    assert (parsed.redis_operator_secret, parsed.redis_operator_key) == ("op", "url")


# --- scrape wiring --------------------------------------------------------------------------------------------------


def test_the_prometheus_operators_kinds_are_made_only_when_the_cluster_serves_them() -> None:
    without = _converge(_observation())
    assert not {"ServiceMonitor", "PrometheusRule"} & set(without.children)
    assert not [name for name in without.children["Service"] if name.endswith("-metrics")]
    monitoring = {"ServiceMonitor": {}, "PrometheusRule": {}}
    present = replace(without, prometheus_operator=True, children={**without.children, **monitoring})
    made = {(m["kind"], m["metadata"]["name"]) for m in decisions.decide(present).supporting}
    assert made == {
        ("ServiceMonitor", "payments"),
        ("PrometheusRule", "payments"),
        *(("Service", f"payments-{service}-metrics") for service in specs.SERVICES),
    }
    converged = _converge(present)  # once made, an idle pass writes them no more
    assert set(converged.children["PrometheusRule"]) == {"payments"}
    assert not _writes(decisions.decide(converged))
    # a workloads-only pass does not look at them
    assert decisions.decide(replace(present, full=False)).supporting == []
