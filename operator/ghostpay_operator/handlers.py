"""kopf wiring, and nothing else: which events start a reconcile pass, the watch-fed caches a pass reads, retries
with back-off, peering, events.

- an instance's own watch events (create, spec change, and the periodic re-list) → reconcile it;
- events of the Deployments and Jobs it owns (and of its CronJob's key-rotation Jobs) → reconcile the owner, so
  status follows pods and rotations — only when what a pass reads of the child changed, not on a controller's
  bookkeeping update;
- a timer per instance → periodic resync, and the back-off retry while its spec cannot be realised;
- a release's next decision that only time brings (a canary step's hold, the scale-down delay, the progress
  deadline; `release.wake_after`) → one pass at that moment, not up to a resync later.

Caches: one kopf index per kind the operator owns (`kube.WATCHED`, its watch filtered by the API server to the
operator's managed-by label) holds its children by (namespace, instance), and one holds the instances. A pass reads
its children from them instead of listing; it takes the instance from its cache when that copy is the version its
own last read or write answered or the first it sees of the instance, the answer of that read or write when the
cache still shows a version it replaced (`Kube.latest`), and otherwise GETs it. kopf calls no handler before every
index has been filled from its watch's first listing.

Passes on one instance are serialised by a lock; the pass itself (in `reconcile`) starts from the cluster as the
watches and its reads show it, never from what an earlier pass concluded.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import os
import zlib
from collections.abc import Mapping
from typing import Any, cast

import kopf
from lightkube import ApiError

from ghostpay_operator import decide, metrics, readings, reconcile
from ghostpay_operator import spec as specs
from ghostpay_operator.builders import meta, rotation
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.kube import WATCHED, Kube, namespace_terminating
from ghostpay_operator.observe import Owned
from ghostpay_operator.spec import GROUP, PLURAL, VERSION

RESYNC_SECONDS = float(os.environ.get("GHOSTPAY_OPERATOR_RESYNC_SECONDS", "30"))
MAX_BACKOFF_SECONDS = 60.0
TIMER_EXIT_POLL_SECONDS = 2.0  # see `configure`
# A child's event waits this long before its pass, so the burst a rollout makes (every pod, every status update of
# every Deployment) costs one pass, not one each: fewer API requests, and the status is at most this much later.
FOLD_SECONDS = float(os.environ.get("GHOSTPAY_OPERATOR_FOLD_SECONDS", "1.0"))
WAKE_MARGIN_SECONDS = 0.5  # a timed decision's pass runs this long after its moment: past it, never just before
FINALIZER = "ghostpay.io/operator"  # kopf's, on every instance: kopf stops an instance's resync timer before it goes
log = logging.getLogger("ghostpay_operator")
_OWNED = {"app.kubernetes.io/managed-by": meta.MANAGED_BY}


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
    settings.persistence.finalizer = FINALIZER
    settings.watching.server_timeout = 300
    # A deleted instance keeps kopf's finalizer until its resync timer has stopped; a timer caught mid-pass is looked
    # at again only after this long (kopf's default, 60 s, held `kubectl delete` a minute; a pass takes seconds).
    settings.background.cancellation_polling = TIMER_EXIT_POLL_SECONDS
    # The API server sends the child watches only what the operator made (kopf's `labels=` filters client-side).
    for group, version, plural in WATCHED.values():
        settings.watching.label_selectors[group, version, plural] = f"app.kubernetes.io/managed-by={meta.MANAGED_BY}"
    memo.kube = Kube.connect()
    memo.locks = {}
    memo.waiting = set()
    memo.failures = {}
    memo.background = set()  # passes started by children's events or wake-ups, still running
    memo.wakes = {}  # instance uid -> the pass due when its release's next timed decision is (`_wake_later`)
    memo.readings = {}  # child uid -> what a pass reads of it, as of the last event that started or joined a pass
    memo.checked = {}  # instance uid -> the verdict on the Secrets its spec names (`observe.Checked`)


def index_id(kind: str) -> str:
    """The name of the cache of `kind` (kopf passes each index to handlers as a keyword argument of its name)."""
    return f"owned_{kind.lower()}"


def _by_instance(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Manifest]:
    """A child, under (its namespace, its instance label), copied: kopf may reuse the body it hands out."""
    metadata = body["metadata"]
    instance = (metadata.get("labels") or {}).get("app.kubernetes.io/instance")
    return {(metadata["namespace"], instance): copy.deepcopy(dict(body))} if instance else {}


for _kind, (_group, _version, _plural) in WATCHED.items():
    kopf.index(_group, _version, _plural, labels=_OWNED, id=index_id(_kind))(_by_instance)


@kopf.index(GROUP, VERSION, PLURAL)
def instances(body: kopf.Body, **_: Any) -> dict[str, Manifest]:
    """Each instance by uid, as its watch last saw it."""
    return {body["metadata"]["uid"]: copy.deepcopy(dict(body))}


def _owned(indices: Mapping[str, Any]) -> Owned:
    return {kind: indices[index_id(kind)] for kind in WATCHED}


async def _instance(
    namespace: str, name: str, uid: str, memo: kopf.Memo, indices: Mapping[str, Any]
) -> Manifest | None:
    """The instance's latest version: the watch's copy when it is what this operator last read or wrote (so it holds
    the last status written), differs from that in bookkeeping alone, or is the first version it sees; what that
    read or write answered when the watch has not caught up with it yet; else a GET (`Kube.latest`)."""
    cached = next(iter(indices["instances"].get(uid, ())), None)
    known = None if cached is None else memo.kube.latest(cached)
    if known is not None:
        return known  # type: ignore[no-any-return]
    return await memo.kube.instance(namespace, name)  # type: ignore[no-any-return]


async def _reconcile(
    namespace: str, name: str, uid: str, memo: kopf.Memo, indices: Mapping[str, Any], full: bool = True
) -> reconcile.Outcome | None:
    """One pass for the instance, on its latest version (taken after the lock, so never from a stale event);
    `indices`: the handler's keyword arguments, which carry the caches.

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
        body = await _instance(namespace, name, uid, memo, indices)
        if body is None or body["metadata"].get("deletionTimestamp") or body["metadata"]["uid"] != uid:
            return None
        try:
            outcome = await reconcile.reconcile(memo.kube, _owned(indices), body, full=full, checked=memo.checked)
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
    _wake_later(namespace, name, uid, memo, indices, outcome.wake_after)
    problem = outcome.problem.reason if outcome.problem else None
    previous = readings.without_kopf(body.get("status") or {})
    key_rotation = (body.get("spec") or {}).get("keyRotation")
    schedule = (
        key_rotation.get("schedule", specs.DEFAULT_ROTATION_SCHEDULE) if isinstance(key_rotation, dict) else None
    )
    metrics.record_pass(
        namespace, name, previous, outcome.status, problem, outcome.events, outcome.analysis, schedule
    )
    for event in outcome.events:
        kopf.event(kopf.Body(cast(kopf.RawBody, body)), type=event.type, reason=event.reason, message=event.message)
    return outcome


def _key(body: kopf.Body) -> tuple[str, str, str]:
    meta_ = body["metadata"]
    return meta_["namespace"], meta_["name"], meta_["uid"]


def _live(body: kopf.Body) -> bool:
    return not body.get("metadata", {}).get("deletionTimestamp")


@kopf.on.event(GROUP, VERSION, PLURAL)
async def instance_changed(type: str, body: kopf.Body, memo: kopf.Memo, **indices: Any) -> None:
    # Our own status writes come back as events too: only the first sight of an instance (type None: the
    # operator's initial listing) or a spec it has not yet observed needs a pass.
    unobserved = (body.get("status") or {}).get("observedGeneration") != body["metadata"].get("generation")
    command = bool(set(body["metadata"].get("annotations") or {}) & set(decide.COMMANDS))
    if type == "DELETED":
        metrics.forget(body["metadata"]["namespace"], body["metadata"]["name"])
        memo.checked.pop(body["metadata"]["uid"], None)
        if (wake := memo.wakes.pop(body["metadata"]["uid"], None)) is not None:
            wake.cancel()
    elif _live(body) and _finalized(body) and (type is None or unobserved or command):
        await _reconcile(*_key(body), memo, indices)


def _finalized(body: kopf.Body) -> bool:
    """Whether kopf's finalizer is on the instance. When it is not, kopf adds it as soon as this event's handler
    returns, and that addition's event starts the pass: a pass now would write the status first, kopf would see
    that write's event still without its finalizer and add it a second time (a request per new instance). Should
    kopf not add it, the resync's first pass comes all the same."""
    return FINALIZER in (body["metadata"].get("finalizers") or [])


@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def resync(body: kopf.Body, memo: kopf.Memo, **indices: Any) -> None:
    if not _live(body):
        return
    outcome = await _reconcile(*_key(body), memo, indices)
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


def _news(type: str, body: kopf.Body, memo: kopf.Memo) -> bool:
    """Whether a child's event can change what a pass concludes: not when what a pass reads of the child
    (`readings.child_reading`) is what it was at the child's last event that started or joined a pass — that pass
    starts after that event, so it reads the child as it is now. Controllers' bookkeeping updates cost no pass."""
    uid = body["metadata"]["uid"]
    if type == "DELETED":
        memo.readings.pop(uid, None)
        return True
    reading = readings.child_reading(dict(body))
    if memo.readings.get(uid) == reading:
        return False
    memo.readings[uid] = reading
    return True


def _finished(memo: kopf.Memo, task: asyncio.Task[Any]) -> None:
    memo.background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "a pass after a child's event failed (the next event or the resync retries it)", exc_info=task.exception()
        )


def _in_background(memo: kopf.Memo, namespace: str, name: str, uid: str, indices: Mapping[str, Any]) -> None:
    """A workloads-only pass for the instance, run as a task of its own."""
    task = asyncio.create_task(_reconcile(namespace, name, uid, memo, indices, full=False))
    memo.background.add(task)  # kept until done: the event loop holds tasks only weakly
    task.add_done_callback(lambda done: _finished(memo, done))


async def _reconcile_owner(type: str, body: kopf.Body, memo: kopf.Memo, indices: Mapping[str, Any]) -> None:
    """A workloads-only pass for the child's instance, in the background: kopf indexes a child's next events only
    once its handler has returned, and the pass (FOLD_SECONDS later) must read the child as it is then."""
    instance = _instance_of(body)
    if instance is not None and _news(type, body, memo):
        _in_background(memo, body["metadata"]["namespace"], *instance, indices)


def _wake_later(
    namespace: str, name: str, uid: str, memo: kopf.Memo, indices: Mapping[str, Any], seconds: float | None
) -> None:
    """Replaces the instance's pending wake-up by one `seconds` from now (a little after, so that the deadline
    has passed), unless the resync comes first anyway."""
    pending = memo.wakes.pop(uid, None)
    if pending is not None:
        pending.cancel()
    if seconds is not None and seconds < RESYNC_SECONDS:
        loop = asyncio.get_running_loop()
        wake = functools.partial(_in_background, memo, namespace, name, uid, indices)
        memo.wakes[uid] = loop.call_later(seconds + WAKE_MARGIN_SECONDS, wake)


@kopf.on.event("apps", "v1", "deployments", labels=_OWNED)
async def deployment_changed(type: str, body: kopf.Body, memo: kopf.Memo, **indices: Any) -> None:
    if type in ("MODIFIED", "DELETED"):
        await _reconcile_owner(type, body, memo, indices)


@kopf.on.event("batch", "v1", "jobs", labels=_OWNED)
async def job_changed(type: str, body: kopf.Body, memo: kopf.Memo, **indices: Any) -> None:
    if type == "MODIFIED":
        await _reconcile_owner(type, body, memo, indices)
