"""Which instance a watched child's event is about: its owner, or for a key-rotation Job (owned by the
CronJob, not the instance) the instance named by its labels and annotation."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import kopf
import pytest
from lightkube import ApiError, AsyncClient
from lightkube.models import meta_v1

from ghostpay_operator import handlers
from ghostpay_operator.builders import rotation
from ghostpay_operator.kube import Kube


def test_an_owned_child_belongs_to_its_owner() -> None:
    owner = {"kind": "GhostPayInstance", "name": "payments", "uid": "uid-1"}
    body = kopf.Body({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "x", "uid": "u"}, owner]}})
    assert handlers._instance_of(body) == ("payments", "uid-1")


def test_a_key_rotation_job_belongs_to_the_instance_its_cronjob_labelled_it_with() -> None:
    body = kopf.Body(
        {
            "metadata": {
                "ownerReferences": [{"kind": "CronJob", "name": "payments-key-rotation", "uid": "cj"}],
                "labels": {"app.kubernetes.io/instance": "payments"},
                "annotations": {rotation.INSTANCE_UID: "uid-1"},
            }
        }
    )
    assert handlers._instance_of(body) == ("payments", "uid-1")


def test_a_job_without_owner_or_uid_belongs_to_no_instance() -> None:
    body = kopf.Body({"metadata": {"labels": {"app.kubernetes.io/instance": "payments"}}})
    assert handlers._instance_of(body) is None


def _refusal(causes: list[dict[str, str]]) -> ApiError:
    status = {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "refused", "details": {"causes": causes}}
    return ApiError(status=meta_v1.Status.from_dict(status))


class _Kube:
    async def instance(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"namespace": namespace, "name": name, "uid": "uid-1"}}


@pytest.mark.parametrize("terminating", [True, False])
async def test_a_pass_refused_because_the_namespace_is_going_ends_quietly(
    terminating: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    causes = [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}] if terminating else []

    passes = []

    async def refused(*args: object, **__: object) -> None:
        passes.append(args)
        raise _refusal(causes)

    monkeypatch.setattr(handlers.reconcile, "reconcile", refused)
    memo = kopf.Memo(kube=_Kube(), locks={}, waiting=set(), checked={})
    indices: dict[str, Any] = {"instances": {}, **{handlers.index_id(kind): {} for kind in handlers.WATCHED}}
    if terminating:
        assert await handlers._reconcile("t-1", "payments", "uid-1", memo, indices) is None
    else:  # any other refusal is an error kopf reports (and the timer retries)
        with pytest.raises(ApiError):
            await handlers._reconcile("t-1", "payments", "uid-1", memo, indices)
    assert len(passes) == 1  # the pass ran, and was refused


async def test_a_new_instance_is_reconciled_once_kopf_has_added_its_finalizer(monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[str] = []

    async def a_pass(namespace: str, name: str, uid: str, *_: object, **__: object) -> None:
        passes.append(uid)

    monkeypatch.setattr(handlers, "_reconcile", a_pass)
    metadata = {"namespace": "shop", "name": "payments", "uid": "uid-1", "generation": 1}
    new = kopf.Body({"metadata": metadata})
    await handlers.instance_changed("ADDED", new, kopf.Memo())
    assert passes == []  # kopf adds its finalizer after this handler: that event starts the pass
    finalized = kopf.Body({"metadata": {**metadata, "finalizers": [handlers.FINALIZER]}})
    await handlers.instance_changed("MODIFIED", finalized, kopf.Memo())
    assert passes == ["uid-1"]


def test_the_caches_file_a_child_under_its_namespace_and_instance() -> None:
    labels = {"app.kubernetes.io/instance": "payments"}
    child = kopf.Body({"metadata": {"namespace": "shop", "name": "payments-cards-blue", "labels": labels}})
    filed = handlers._by_instance(child)
    assert filed == {("shop", "payments"): dict(child)}
    assert filed[("shop", "payments")]["metadata"] is not child["metadata"]  # a copy: kopf may reuse its bodies
    assert handlers._by_instance(kopf.Body({"metadata": {"namespace": "shop", "name": "x"}})) == {}


class _Client:
    """The API server as lightkube's client answers: each GET and status write a new resourceVersion."""

    def __init__(self) -> None:
        self.version = 7
        self.gets = 0

    def _instance(self) -> SimpleNamespace:
        metadata = {"namespace": "shop", "name": "payments", "uid": "uid-1", "resourceVersion": str(self.version)}
        return SimpleNamespace(to_dict=lambda: {"metadata": metadata, "status": {}})

    async def get(self, *_: object, **__: object) -> SimpleNamespace:
        self.gets += 1
        return self._instance()

    async def patch(self, *_: object, **__: object) -> SimpleNamespace:
        self.version += 1
        return self._instance()


def _watched(version: int) -> dict[str, Any]:
    metadata = {"namespace": "shop", "name": "payments", "uid": "uid-1", "resourceVersion": str(version)}
    return {"instances": {"uid-1": [{"metadata": metadata, "status": {}}]}}


async def test_a_pass_gets_the_instance_only_when_its_watch_shows_a_version_it_never_read_or_wrote() -> None:
    client = _Client()
    memo = kopf.Memo(kube=Kube(cast(AsyncClient, client)))
    read = [await handlers._instance("shop", "payments", "uid-1", memo, _watched(7))]
    assert client.gets == 0  # its first sight: the watch's copy is the newest this process knows
    read.append(await handlers._instance("shop", "payments", "uid-1", memo, _watched(7)))
    assert client.gets == 0  # the same version again: no request
    await memo.kube.write_status("shop", "payments", {"phase": "Healthy"})  # the API server answers version 8
    read.append(await handlers._instance("shop", "payments", "uid-1", memo, _watched(7)))
    assert client.gets == 0  # the watch has not shown the write yet: the write's answer is newer than its copy
    read.append(await handlers._instance("shop", "payments", "uid-1", memo, _watched(8)))
    assert client.gets == 0  # it has
    finalized = _watched(9)
    finalized["instances"]["uid-1"][0]["metadata"]["finalizers"] = ["ghostpay.io/operator"]
    read.append(await handlers._instance("shop", "payments", "uid-1", memo, finalized))
    assert client.gets == 0  # kopf added its finalizer: a version never seen, but nothing a pass reads changed
    client.version = 10  # someone else changed it (a user): a version this operator never saw
    changed = _watched(10)
    changed["instances"]["uid-1"][0]["metadata"]["annotations"] = {"ghostpay.io/promote": ""}
    read.append(await handlers._instance("shop", "payments", "uid-1", memo, changed))
    assert client.gets == 1  # GET
    read.append(await handlers._instance("shop", "payments", "uid-1", memo, _watched(8)))
    assert client.gets == 1  # a watch lagging behind that GET: its answer stands in
    assert [i["metadata"]["resourceVersion"] for i in read if i] == ["7", "7", "8", "8", "9", "10", "10"]


def _deployment(**status: int) -> dict[str, Any]:
    metadata = {"name": "payments-cards-blue", "uid": "d-1", "generation": 2, "labels": {}, "annotations": {}}
    return {"kind": "Deployment", "metadata": metadata, "spec": {"replicas": 2}, "status": status}


def _job(**status: Any) -> dict[str, Any]:
    metadata = {"name": "payments-migrate-1", "uid": "j-1", "labels": {}}
    return {"kind": "Job", "metadata": metadata, "spec": {}, "status": status}


def test_a_childs_event_starts_a_pass_only_when_what_a_pass_reads_of_it_changed() -> None:
    memo = kopf.Memo(readings={})
    rolling = _deployment(observedGeneration=2, updatedReplicas=2, readyReplicas=1)
    assert handlers._news("MODIFIED", kopf.Body(rolling), memo)
    assert not handlers._news(
        "MODIFIED", kopf.Body({**rolling, "status": {**rolling["status"], "availableReplicas": 1}}), memo
    )
    assert handlers._news(
        "MODIFIED", kopf.Body(_deployment(observedGeneration=2, updatedReplicas=2, readyReplicas=2)), memo
    )
    assert handlers._news("DELETED", kopf.Body(rolling), memo)  # always news, and forgotten
    assert memo.readings == {}

    running = _job(active=1)
    assert handlers._news("MODIFIED", kopf.Body(running), memo)
    assert not handlers._news("MODIFIED", kopf.Body(_job(active=1, ready=1)), memo)
    done = {"succeeded": 1, "completionTime": "2026-01-01T00:00:00Z"}
    assert handlers._news("MODIFIED", kopf.Body(_job(**done)), memo)


async def test_a_timed_release_decision_gets_one_pass_at_its_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[tuple[str, bool]] = []

    async def a_pass(namespace: str, name: str, uid: str, *_: object, full: bool = True) -> None:
        passes.append((uid, full))

    monkeypatch.setattr(handlers, "_reconcile", a_pass)
    monkeypatch.setattr(handlers, "WAKE_MARGIN_SECONDS", 0.0)
    memo = kopf.Memo(wakes={}, background=set())
    handlers._wake_later("shop", "payments", "uid-1", memo, {}, 0.05)
    handlers._wake_later("shop", "payments", "uid-1", memo, {}, 0.1)  # a later pass's answer replaces it
    handlers._wake_later("shop", "other", "uid-2", memo, {}, 0.05)
    handlers._wake_later("shop", "other", "uid-2", memo, {}, None)  # the release is over: no wake-up
    handlers._wake_later("shop", "third", "uid-3", memo, {}, handlers.RESYNC_SECONDS)  # the resync comes first
    await asyncio.sleep(0.3)
    assert passes == [("uid-1", False)]  # one workloads-only pass, for the release still in progress
    assert set(memo.wakes) == {"uid-1"} and not memo.background


async def test_a_deleted_instances_timer_is_looked_at_again_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf keeps its finalizer on a deleted instance until the resync timer has stopped; one caught mid-pass is
    polled again after `cancellation_polling`, whose default (60 s) held a `kubectl delete` that long in CI."""
    monkeypatch.setattr(handlers.Kube, "connect", staticmethod(lambda: None))
    settings = kopf.OperatorSettings()
    assert settings.background.cancellation_polling == 60  # kopf's default, which `configure` must change
    await handlers.configure(settings=settings, memo=kopf.Memo())
    assert settings.background.cancellation_polling == handlers.TIMER_EXIT_POLL_SECONDS <= 5
