"""Which instance a watched child's event is about: its owner, or for a key-rotation Job (owned by the
CronJob, not the instance) the instance named by its labels and annotation."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from lightkube import ApiError
from lightkube.models import meta_v1

from ghostpay_operator import handlers
from ghostpay_operator.builders import rotation


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
    memo = kopf.Memo(kube=_Kube(), locks={}, waiting=set())
    if terminating:
        assert await handlers._reconcile("t-1", "payments", "uid-1", memo) is None
    else:  # any other refusal is an error kopf reports (and the timer retries)
        with pytest.raises(ApiError):
            await handlers._reconcile("t-1", "payments", "uid-1", memo)
    assert len(passes) == 1  # the pass ran, and was refused
