"""The key-rotation builders: the CronJob, its ServiceAccount, Role and RoleBinding, in local and Vault mode."""

from __future__ import annotations

from typing import Any

from ghostpay_operator import release
from ghostpay_operator import spec as specs
from ghostpay_operator.builders import desired, meta, rotation
from tests.operator.support.samples import body

LOCAL = {"schedule": "*/5 * * * *", "gracePeriod": "90m"}
VAULT = {**LOCAL, "vault": {"address": "https://vault.example:8200", "role": "gp", "transitKey": "jwt-key"}}


def _spec(key_rotation: dict[str, Any] | None = None) -> specs.InstanceSpec:
    return specs.parse(body(**({"keyRotation": key_rotation} if key_rotation is not None else {})))


def _pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pod


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_cronjob_runs_the_rotation_on_the_spec_schedule_against_the_key_secret() -> None:
    cronjob = rotation.cronjob(_spec(LOCAL))
    assert (cronjob["kind"], cronjob["metadata"]["name"]) == ("CronJob", "payments-key-rotation")
    schedule = cronjob["spec"]
    assert (schedule["schedule"], schedule["concurrencyPolicy"], schedule["timeZone"]) == (
        "*/5 * * * *",
        "Forbid",
        "Etc/UTC",
    )
    assert schedule["startingDeadlineSeconds"] > 0
    assert 0 < schedule["successfulJobsHistoryLimit"] <= 3 and 0 < schedule["failedJobsHistoryLimit"] <= 3
    job = schedule["jobTemplate"]["spec"]
    assert 0 < job["backoffLimit"] <= 3 and job["activeDeadlineSeconds"] > 0
    pod = _pod(cronjob)
    (container,) = pod["containers"]
    assert container["command"] == [
        "ghostpay",
        "keys",
        "rotate",
        "--grace-period",
        "90m",
        "--kube-secret",
        "payments-keys",
        "--namespace",
        "shop",
    ]
    assert container["image"] == "ghcr.io/example/ghostpay:1.4.0"
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("payments-key-rotation", True)
    assert pod["restartPolicy"] == "Never"


def test_the_rotation_pod_is_as_hardened_as_the_services_and_gets_only_the_passphrase() -> None:
    pod = _pod(rotation.cronjob(_spec(LOCAL)))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = _env(container)
    assert env["GHOSTPAY_KEYS_PASSPHRASE"] == {
        "secretKeyRef": {"name": "payments-keys-passphrase", "key": "passphrase"}
    }
    assert "GHOSTPAY_DATABASE_URL" not in env and not any(name.startswith("GHOSTPAY_VAULT_") for name in env)
    assert "envFrom" not in container
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]  # the key Secret is read through the API, not mounted


def test_the_jobs_carry_the_labels_and_uid_the_operator_finds_them_by() -> None:
    template = rotation.cronjob(_spec(LOCAL))["spec"]["jobTemplate"]["metadata"]
    assert template["labels"] == {
        "app.kubernetes.io/name": "ghostpay",
        "app.kubernetes.io/instance": "payments",
        "app.kubernetes.io/managed-by": meta.MANAGED_BY,
        "app.kubernetes.io/component": "key-rotation",
    }
    assert template["annotations"] == {rotation.INSTANCE_UID: "uid-1"}


def test_in_vault_mode_the_job_logs_in_to_vault_with_its_own_role() -> None:
    pod = _pod(rotation.cronjob(_spec(VAULT)))
    container = pod["containers"][0]
    assert container["command"] == ["ghostpay", "keys", "rotate", "--grace-period", "90m"]
    env = _env(container)
    assert (env["GHOSTPAY_VAULT_ADDR"], env["GHOSTPAY_VAULT_ROLE"], env["GHOSTPAY_VAULT_JWT_KEY"]) == (
        "https://vault.example:8200",
        "gp-key-rotation",
        "jwt-key",
    )
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("payments-key-rotation", True)


def test_the_role_allows_get_and_patch_on_the_key_secrets_alone() -> None:
    account, role, binding = rotation.access(_spec(LOCAL), "cronjob-uid")
    assert (account["kind"], account["metadata"]["name"], account["automountServiceAccountToken"]) == (
        "ServiceAccount",
        "payments-key-rotation",
        False,
    )
    assert role["kind"] == "Role" and role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["payments-keys-public", "payments-keys-signing", "payments-keys-pan"],
            "verbs": ["get", "patch"],
        }
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "payments-key-rotation", "namespace": "shop"}]
    for manifest in (account, role, binding):
        (owner,) = manifest["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "CronJob",
            "payments-key-rotation",
            "cronjob-uid",
            True,
        )
        assert manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == "payments"


def test_in_vault_mode_the_role_grants_nothing() -> None:
    _, role, _ = rotation.access(_spec(VAULT), "cronjob-uid")
    assert role["rules"] == []


def test_the_cronjob_is_desired_only_with_key_rotation() -> None:
    assert desired.desired_children(_spec(), release.steady("blue")).key_rotation is None
    cronjob = desired.desired_children(_spec(LOCAL), release.steady("blue")).key_rotation
    assert cronjob is not None and cronjob["metadata"]["annotations"][meta.SPEC_HASH]
    owner = cronjob["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("GhostPayInstance", "uid-1")
    assert rotation.cronjob(_spec({}))["spec"]["schedule"] == "0 3 * * *"  # every field defaulted


def test_a_schedule_change_is_no_release_of_the_services() -> None:
    before = desired.desired_children(_spec(LOCAL), release.steady("blue"))
    after = desired.desired_children(_spec({**LOCAL, "schedule": "0 4 * * *"}), release.steady("blue"))
    assert [d["spec"]["template"] for d in before.deployments] == [d["spec"]["template"] for d in after.deployments]
    assert before.key_rotation != after.key_rotation
