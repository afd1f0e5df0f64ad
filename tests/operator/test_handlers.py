"""Which instance a watched child's event is about: its owner, or for a key-rotation Job (owned by the
CronJob, not the instance) the instance named by its labels and annotation."""

from __future__ import annotations

import kopf

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
