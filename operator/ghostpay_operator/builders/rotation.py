"""Key rotation (`spec.keyRotation`): a CronJob running `ghostpay keys rotate` under its own ServiceAccount, and
the Role that lets that ServiceAccount rewrite the key store's Secrets (local key store) and nothing else.

The CronJob is owned by the instance; its ServiceAccount, Role and RoleBinding are owned by the CronJob, so
deleting the CronJob (when `keyRotation` is removed) lets the garbage collector take them too: the operator then
needs `delete` on cronjobs only, not on ServiceAccounts, Roles or RoleBindings of every namespace.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ghostpay_operator.builders import config, meta, names, pods
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import InstanceSpec

COMPONENT = names.KEY_ROTATION
INSTANCE_UID = "ghostpay.io/instance-uid"  # on the Jobs, which the CronJob (not the instance) owns
LABELS = {"app.kubernetes.io/component": COMPONENT}
RBAC = "rbac.authorization.k8s.io"


def command(spec: InstanceSpec) -> list[str]:
    """With Vault the keys are rotated there; without it the Job rewrites the key store's Secrets the pods mount."""
    assert spec.key_rotation is not None
    base = ["ghostpay", "keys", "rotate", "--grace-period", spec.key_rotation.grace_period]
    if spec.vault is not None:
        return base
    return [*base, "--kube-secret", names.key_store(spec.name), "--namespace", spec.namespace]


def _container(spec: InstanceSpec) -> dict[str, Any]:
    # The same activation delay as the services (it decides which versions are past their grace period).
    values = {**pods.vault_environment(spec, COMPONENT), **config.key_settings(spec), "GHOSTPAY_LOG_LEVEL": "INFO"}
    passphrase = [] if spec.vault is not None else [pods.passphrase_env(spec)]
    return {
        "name": COMPONENT,
        "image": spec.image_ref,
        "command": command(spec),
        # Not the services' environment: the Job needs no database and no ConfigMap, only the key store's.
        "env": [*passphrase, *({"name": k, "value": v} for k, v in sorted(values.items()))],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": pods.container_security_context(),
        "volumeMounts": pods.volume_mounts(spec, COMPONENT),  # /tmp: the key store is rotated there
    }


def cronjob(spec: InstanceSpec) -> Manifest:
    assert spec.key_rotation is not None
    labels = {**meta.instance_labels(spec), **LABELS}
    pod = pods.pod_spec(
        spec,
        [_container(spec)],
        pods.volumes(spec, COMPONENT),
        service_account=names.key_rotation_account(spec.name),
        token=True,  # it logs in with it: to Vault, or to the API server to rewrite the key Secrets
        restartPolicy="Never",
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": meta.object_meta(spec, names.key_rotation_cronjob(spec.name), LABELS),
        "spec": {
            "schedule": spec.key_rotation.schedule,
            "timeZone": "Etc/UTC",  # not the controller-manager's local time
            "concurrencyPolicy": "Forbid",  # two rotations at once would race on the key store
            "startingDeadlineSeconds": 3600,  # a run missed (controller down) by more than this waits for the next
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                # The Jobs carry the instance's labels (so the operator's LIST and watch of Jobs see them) and
                # its uid (they are owned by the CronJob, so have no owner reference to the instance).
                "metadata": {"labels": labels, "annotations": {INSTANCE_UID: spec.uid}},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 600,
                    "template": {"metadata": {"labels": labels}, "spec": pod},
                },
            },
        },
    }


def job_now(cronjob: Manifest, cronjob_uid: str, now: datetime) -> Manifest:
    """A rotation Job started now from the CronJob, as `kubectl create job --from=cronjob/...` makes one: its job
    template, owned by the CronJob (so its history limits clean it up), named as the CronJob names its own Jobs
    (`<cronjob>-<minutes since the epoch>`): a scheduled run of the same minute is then the same Job, not a second
    rotation racing it on the key store."""
    template = cronjob["spec"]["jobTemplate"]
    name = cronjob["metadata"]["name"]
    owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": name, "uid": cronjob_uid, "controller": True}
    metadata = {
        "name": f"{name}-{int(now.timestamp()) // 60}",
        "namespace": cronjob["metadata"]["namespace"],
        "labels": dict(template["metadata"]["labels"]),
        "annotations": {**template["metadata"]["annotations"], "cronjob.kubernetes.io/instantiate": "manual"},
        "ownerReferences": [owner],
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": template["spec"]}


def _owned_by(spec: InstanceSpec, kind: str, name: str, cronjob_uid: str) -> dict[str, Any]:
    metadata = meta.object_meta(spec, name, LABELS)
    cronjob = names.key_rotation_cronjob(spec.name)
    owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob, "uid": cronjob_uid}
    metadata["ownerReferences"] = [{**owner, "controller": True}]
    return {"apiVersion": "v1" if kind == "ServiceAccount" else f"{RBAC}/v1", "kind": kind, "metadata": metadata}


def access(spec: InstanceSpec, cronjob_uid: str) -> list[Manifest]:
    """The Job's ServiceAccount, and a Role (with its binding) allowing get and patch on the key store's Secrets alone.
    With Vault the Role grants nothing: the Job talks to Vault only (its Vault role is what limits it)."""
    name = names.key_rotation_account(spec.name)
    account = {**_owned_by(spec, "ServiceAccount", name, cronjob_uid), "automountServiceAccountToken": False}
    rules = []
    if spec.vault is None:
        rules.append(
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": names.key_part_secrets(spec.name),
                "verbs": ["get", "patch"],
            }
        )
    role = {**_owned_by(spec, "Role", name, cronjob_uid), "rules": rules}
    binding = {
        **_owned_by(spec, "RoleBinding", name, cronjob_uid),
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": spec.namespace}],
    }
    return [account, role, binding]
