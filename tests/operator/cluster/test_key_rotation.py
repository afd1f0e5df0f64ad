"""Key rotation on the local control plane: spec.keyRotation becomes a CronJob with its own ServiceAccount and
Role, its Jobs set status.lastKeyRotation and the KeyRotation condition, and removing it removes them all.

The operator here has no resync timer to speak of (an hour): every pass comes from a watch event (the instance's,
or a Job's), so these tests also show that the key-rotation Jobs, owned by the CronJob and not by the instance,
still reach their instance. KWOK runs no containers, but completes the pods of Jobs: a real CronJob run ends
Complete; a failed run is simulated by a Job the Job controller leaves alone (spec.managedBy) whose status the
test writes the way that controller would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ghostpay_devtools import localcluster
from tests.operator.support.kube_helpers import (
    NEVER,
    SETTLE,
    condition,
    create_database_secret,
    get_json,
    healthy_instance,
    install_crds,
    instance_yaml,
    metrics_url,
    operator_process,
    scrape,
    wait_for,
)
from tests.support import procs

pytestmark = pytest.mark.slow
ROTATION = "app.kubernetes.io/component=key-rotation"


@pytest.fixture(scope="module")
def operator(cluster: localcluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[procs.Proc]:
    install_crds(cluster)
    proc = operator_process(
        cluster, tmp_path_factory.mktemp("operator"), GHOSTPAY_OPERATOR_RESYNC_SECONDS="3600"
    ).start()
    yield proc
    proc.stop()


def _instance(cluster: localcluster.Cluster, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(cluster, "ghostpayinstance", "payments", "-n", namespace)
    return found


def _events(cluster: localcluster.Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind=GhostPayInstance,reason={reason}"
    items: list[dict[str, Any]] = get_json(cluster, "events", "-n", namespace, "--field-selector", selector)["items"]
    return items


def _can(cluster: localcluster.Cluster, namespace: str, *request: str) -> bool:
    account = f"--as=system:serviceaccount:{namespace}:payments-key-rotation"
    answer = cluster.kubectl("auth", "can-i", *request, "-n", namespace, account, check=False).stdout.strip()
    return answer == "yes"


def test_key_rotation_runs_as_a_cronjob_and_goes_with_the_spec(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str
) -> None:
    create_database_secret(cluster, namespace)
    rotation = {"schedule": "* * * * *", "gracePeriod": "2h"}
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, keyRotation=rotation))
    cronjob = wait_for(
        lambda: get_json(cluster, "cronjob", "payments-key-rotation", "-n", namespace), 60, "the CronJob"
    )
    assert (cronjob["spec"]["schedule"], cronjob["spec"]["concurrencyPolicy"]) == ("* * * * *", "Forbid")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "payments-key-rotation" and pod["automountServiceAccountToken"] is True
    command = pod["containers"][0]["command"]
    secret = ["--kube-secret", "payments-keys", "--namespace", namespace]
    assert command == ["ghostpay", "keys", "rotate", "--grace-period", "2h", *secret]
    for kind in ("serviceaccount", "role", "rolebinding"):
        assert get_json(cluster, kind, "payments-key-rotation", "-n", namespace), kind

    # The Job's ServiceAccount may read and rewrite the key store's Secrets, and nothing else.
    for part in ("public", "signing", "pan"):
        assert _can(cluster, namespace, "get", f"secret/payments-keys-{part}")
        assert _can(cluster, namespace, "patch", f"secret/payments-keys-{part}")
        assert not _can(cluster, namespace, "delete", f"secret/payments-keys-{part}")
    assert not _can(cluster, namespace, "get", "secret/payments-keys-passphrase")
    assert not _can(cluster, namespace, "get", "secret/payments-db")
    assert not _can(cluster, namespace, "list", "secrets")

    # The CronJob fires within a minute; KWOK completes the Job's pod; the status records it.
    instance = wait_for(
        lambda: (i := _instance(cluster, namespace)).get("status", {}).get("lastKeyRotation") and i,
        150,
        "status.lastKeyRotation from the first scheduled Job",
    )
    job = get_json(cluster, "jobs", "-n", namespace, "-l", ROTATION)["items"][0]
    assert instance["status"]["lastKeyRotation"] == job["status"]["completionTime"]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"  # found by its labels, not by an owner
    assert (condition(instance, "KeyRotation")["status"], condition(instance, "KeyRotation")["reason"]) == (
        "True",
        "Rotated",
    )
    wait_for(lambda: _events(cluster, namespace, "KeyRotated"), 30, "a KeyRotated event")

    # Without spec.keyRotation the CronJob goes, and with it (garbage collected) its Jobs, account and Role.
    wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
    remove = json.dumps([{"op": "remove", "path": "/spec/keyRotation"}])
    cluster.kubectl("patch", "ghostpay", "payments", "-n", namespace, "--type=json", "-p", remove)

    def rotation_left() -> list[str]:
        kinds = ("cronjob", "serviceaccount", "role", "rolebinding")
        left = [kind for kind in kinds if get_json(cluster, kind, "payments-key-rotation", "-n", namespace)]
        return left + [
            j["metadata"]["name"] for j in get_json(cluster, "jobs", "-n", namespace, "-l", ROTATION)["items"]
        ]

    wait_for(lambda: not rotation_left() or None, 90, "the key-rotation objects to be deleted")
    instance = wait_for(
        lambda: (i := _instance(cluster, namespace)) and not condition(i, "KeyRotation") and i,
        30,
        "the KeyRotation condition to go",
    )
    assert instance["status"]["lastKeyRotation"] == job["status"]["completionTime"]  # history is kept
    assert get_json(cluster, "serviceaccount", "payments", "-n", namespace)  # the instance's own account stays


def _finished_job(cluster: localcluster.Cluster, namespace: str, name: str, succeeded: bool, at: str) -> None:
    """A key-rotation Job as the CronJob makes them (labels, instance uid, owner), ended as the Job controller
    would end it. `spec.managedBy` keeps that controller away, so the status written here stays."""
    cronjob = get_json(cluster, "cronjob", "payments-key-rotation", "-n", namespace)
    template = cronjob["spec"]["jobTemplate"]
    owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": "payments-key-rotation"}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
            "ownerReferences": [{**owner, "uid": cronjob["metadata"]["uid"], "controller": True}],
        },
        "spec": {**template["spec"], "managedBy": "ghostpay.io/test"},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(job))
    if succeeded:
        ended = [("SuccessCriteriaMet", "CompletionsReached"), ("Complete", "CompletionsReached")]
        counts = {"succeeded": 1, "completionTime": at}
    else:
        ended = [("FailureTarget", "BackoffLimitExceeded"), ("Failed", "BackoffLimitExceeded")]
        counts = {"failed": 3}
    conditions = [
        {"type": kind, "status": "True", "reason": reason, "message": "test", "lastTransitionTime": at}
        for kind, reason in ended
    ]
    status = {"startTime": "2026-01-01T00:00:00Z", "conditions": conditions, **counts}
    cluster.kubectl(
        "patch",
        "job",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def _key_rotation(cluster: localcluster.Cluster, namespace: str, status: str) -> dict[str, Any] | None:
    instance = _instance(cluster, namespace)
    return instance if condition(instance, "KeyRotation").get("status") == status else None


def test_a_failed_rotation_is_a_condition_and_a_warning_until_the_next_success(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str
) -> None:
    create_database_secret(cluster, namespace)
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, keyRotation={"schedule": NEVER}))
    wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
    assert "lastKeyRotation" not in _instance(cluster, namespace)["status"]

    _finished_job(cluster, namespace, "payments-key-rotation-1", True, "2026-01-01T01:00:00Z")
    rotated = wait_for(lambda: _key_rotation(cluster, namespace, "True"), 30, "KeyRotation=True")
    assert rotated["status"]["lastKeyRotation"] == "2026-01-01T01:00:00Z"

    _finished_job(cluster, namespace, "payments-key-rotation-2", False, "2026-01-01T02:00:00Z")
    failed = wait_for(lambda: _key_rotation(cluster, namespace, "False"), 30, "KeyRotation=False")
    failure = condition(failed, "KeyRotation")
    assert failure["reason"] == "RotationFailed" and "payments-key-rotation-2" in failure["message"]
    assert failed["status"]["lastKeyRotation"] == "2026-01-01T01:00:00Z"  # a failure is no rotation
    assert failed["status"]["phase"] == "Healthy"  # the services still run on the keys they have
    (event,) = wait_for(lambda: _events(cluster, namespace, "KeyRotationFailed"), 30, "a KeyRotationFailed event")
    assert event["type"] == "Warning" and "payments-key-rotation-2" in event["message"]

    _finished_job(cluster, namespace, "payments-key-rotation-3", True, "2026-01-01T03:00:00Z")
    again = wait_for(lambda: _key_rotation(cluster, namespace, "True"), 30, "KeyRotation=True again")
    assert condition(again, "KeyRotation")["reason"] == "Rotated"
    assert again["status"]["lastKeyRotation"] == "2026-01-01T03:00:00Z"
    assert len(_events(cluster, namespace, "KeyRotationFailed")) == 1

    # The operator's /metrics: each outcome counted once, the last rotation and its age, the newest succeeded.
    who = {"resource_namespace": namespace, "resource_name": "payments"}

    def value(name: str, **labels: str) -> float | None:
        return scrape(metrics_url(operator)).get((name, frozenset({**who, **labels}.items())))

    assert value("ghostpay_operator_key_rotations_total", outcome="succeeded") == 2
    assert value("ghostpay_operator_key_rotations_total", outcome="failed") == 1
    assert value("ghostpay_operator_key_rotation_succeeded") == 1
    rotated_at = datetime(2026, 1, 1, 3, tzinfo=UTC).timestamp()
    assert value("ghostpay_operator_last_key_rotation_timestamp_seconds") == rotated_at
    age = value("ghostpay_operator_key_rotation_age_seconds")
    assert age is not None and abs(age - (time.time() - rotated_at)) < 600


def test_rotate_keys_annotation_starts_a_rotation_now_and_is_removed(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str
) -> None:
    """What ArgoCD's rotate-keys action does: the annotation alone, on a schedule that will not fire."""
    create_database_secret(cluster, namespace)
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, keyRotation={"schedule": NEVER}))
    wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
    cluster.kubectl("annotate", "ghostpay", "payments", "-n", namespace, "ghostpay.io/rotate-keys=true")
    instance = wait_for(
        lambda: (i := _instance(cluster, namespace)).get("status", {}).get("lastKeyRotation") and i,
        90,
        "status.lastKeyRotation from the Job started now",
    )
    [job] = get_json(cluster, "jobs", "-n", namespace, "-l", ROTATION)["items"]
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["name"] == "payments-key-rotation"
    assert instance["status"]["lastKeyRotation"] == job["status"]["completionTime"]
    assert "ghostpay.io/rotate-keys" not in (instance["metadata"].get("annotations") or {})
    wait_for(lambda: _events(cluster, namespace, "KeyRotationStarted"), 30, "a KeyRotationStarted event")
