"""kopf wiring, and nothing else: which events start a reconcile pass, retries with back-off, peering, events.

- an instance's own watch events (create, spec change, and the periodic re-list) → reconcile it;
- events of the Deployments and Jobs it owns (and of its CronJob's key-rotation Jobs) → reconcile the owner, so
  status follows pods and rotations;
- a timer per instance → periodic resync, and the back-off retry while its spec cannot be realised.

Passes on one instance are serialised by a lock; the pass itself (in `reconcile`) starts from the cluster.
"""

from __future__ import annotations

import asyncio
import logging
import os
import zlib
from typing import Any

import kopf
from lightkube import ApiError

from ghostpay_operator import decide, metrics, reconcile
from ghostpay_operator import spec as specs
from ghostpay_operator.builders import meta, rotation
from ghostpay_operator.kube import Kube, namespace_terminating
from ghostpay_operator.readings import without_kopf
from ghostpay_operator.spec import GROUP, PLURAL, VERSION

RESYNC_SECONDS = float(os.environ.get("GHOSTPAY_OPERATOR_RESYNC_SECONDS", "30"))
MAX_BACKOFF_SECONDS = 60.0
# A child's event waits this long before its pass, so the burst a rollout makes (every pod, every status update of
# every Deployment) costs one pass, not one each: fewer API requests, and the status is at most this much later.
FOLD_SECONDS = float(os.environ.get("GHOSTPAY_OPERATOR_FOLD_SECONDS", "1.0"))
log = logging.getLogger("ghostpay_operator")


def peering_priority(identity: str) -> int:
    """Distinct replicas need distinct priorities: derive one from the pod's name (stable across restarts)."""
    return int(os.environ.get("GHOSTPAY_OPERATOR_PRIORITY") or zlib.crc32(identity.encode()) % 1000 + 1)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.peering.name = "ghostpay-operator"
    # With the peering object (manifests/ creates it) replicas elect one active; without it (a laptop), standalone.
    settings.peering.mandatory = False
    settings.peering.lifetime = int(os.environ.get("GHOSTPAY_OPERATOR_PEERING_LIFETIME", "60"))
    settings.peering.priority = peering_priority(os.environ.get("POD_NAME") or os.uname().nodename)
    settings.posting.level = logging.WARNING  # our own events say what matters; no event per log line
    settings.persistence.finalizer = "ghostpay.io/operator"
    settings.watching.server_timeout = 300
    memo.kube = Kube.connect()
    memo.locks = {}
    memo.waiting = set()
    memo.failures = {}


async def _reconcile(
    namespace: str, name: str, uid: str, memo: kopf.Memo, full: bool = True
) -> reconcile.Outcome | None:
    """One pass for the instance, on its latest version (read after the lock, so never from a stale event).

    Triggers that arrive while a pass is already waiting are folded into it, and a child's event waits
    FOLD_SECONDS first: a burst of pod events costs one pass, not one each. Returns None when folded or when the
    instance (or its namespace) is gone or going."""
    if (uid, full) in memo.waiting or (uid, True) in memo.waiting:
        return None
    memo.waiting.add((uid, full))
    if not full:
        await asyncio.sleep(FOLD_SECONDS)
    lock: asyncio.Lock = memo.locks.setdefault(uid, asyncio.Lock())
    async with lock:
        memo.waiting.discard((uid, full))
        body = await memo.kube.instance(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp") or body["metadata"]["uid"] != uid:
            return None
        try:
            outcome = await reconcile.reconcile(memo.kube, body, full=full)
        except ApiError as exc:
            # The namespace controller deletes Deployments before it reaches the instance: their events start a
            # pass that would recreate them in a namespace already going away.
            if not namespace_terminating(exc):
                metrics.record_error(namespace, name, exc.status.reason or f"HTTP{exc.status.code}")
                raise
            log.warning("namespace %s is being deleted: stopped reconciling %s", namespace, name)
            return None
        except Exception as exc:
            metrics.record_error(namespace, name, type(exc).__name__)
            raise
    problem = outcome.problem.reason if outcome.problem else None
    previous = without_kopf(body.get("status") or {})
    rotation = (body.get("spec") or {}).get("keyRotation")
    schedule = rotation.get("schedule", specs.DEFAULT_ROTATION_SCHEDULE) if isinstance(rotation, dict) else None
    metrics.record_pass(
        namespace, name, previous, outcome.status, problem, outcome.events, outcome.analysis, schedule
    )
    for event in outcome.events:
        kopf.event(kopf.Body(body), type=event.type, reason=event.reason, message=event.message)
    return outcome


def _key(body: kopf.Body) -> tuple[str, str, str]:
    meta_ = body["metadata"]
    return meta_["namespace"], meta_["name"], meta_["uid"]


def _live(body: kopf.Body) -> bool:
    return not body.get("metadata", {}).get("deletionTimestamp")


@kopf.on.event(GROUP, VERSION, PLURAL)
async def instance_changed(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # Our own status writes come back as events too: only the first sight of an instance (type None: the
    # operator's initial listing) or a spec it has not yet observed needs a pass.
    unobserved = (body.get("status") or {}).get("observedGeneration") != body["metadata"].get("generation")
    command = bool(set(body["metadata"].get("annotations") or {}) & set(decide.COMMANDS))
    if type == "DELETED":
        metrics.forget(body["metadata"]["namespace"], body["metadata"]["name"])
    elif _live(body) and (type is None or unobserved or command):
        await _reconcile(*_key(body), memo)


@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def resync(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if not _live(body):
        return
    outcome = await _reconcile(*_key(body), memo)
    uid = body["metadata"]["uid"]
    if outcome is None:
        return
    if outcome.problem is None:
        memo.failures.pop(uid, None)
        return
    failures = memo.failures[uid] = memo.failures.get(uid, 0) + 1
    raise kopf.TemporaryError(outcome.problem.message, delay=min(MAX_BACKOFF_SECONDS, 2.0**failures))


def _instance_of(body: kopf.Body) -> tuple[str, str] | None:
    """(name, uid) of the instance a child belongs to: its owner, or for a key-rotation Job (owned by the
    CronJob) the instance label and uid annotation the CronJob's job template gives it."""
    metadata = body["metadata"]
    owner = next((o for o in metadata.get("ownerReferences", []) if o.get("kind") == "GhostPayInstance"), None)
    if owner is not None:
        return owner["name"], owner["uid"]
    name = metadata.get("labels", {}).get("app.kubernetes.io/instance")
    uid = metadata.get("annotations", {}).get(rotation.INSTANCE_UID)
    return (name, uid) if name and uid else None


async def _reconcile_owner(body: kopf.Body, memo: kopf.Memo) -> None:
    instance = _instance_of(body)
    if instance is not None:
        await _reconcile(body["metadata"]["namespace"], *instance, memo, full=False)


_OWNED = {"app.kubernetes.io/managed-by": meta.MANAGED_BY}


@kopf.on.event("apps", "v1", "deployments", labels=_OWNED)
async def deployment_changed(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if type in ("MODIFIED", "DELETED"):
        await _reconcile_owner(body, memo)


@kopf.on.event("batch", "v1", "jobs", labels=_OWNED)
async def job_changed(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if type == "MODIFIED":
        await _reconcile_owner(body, memo)
