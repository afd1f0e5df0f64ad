"""Every GhostPay container's environment and ServiceAccount, without and with Vault."""

from __future__ import annotations

from typing import Any

import pytest

from ghostpay_operator import release
from ghostpay_operator import spec as specs
from ghostpay_operator.builders import desired, rotation, workloads
from tests.operator.support.samples import body

VAULT = {"vault": {"address": "https://vault.example:8200", "role": "gp", "transitKey": "jwt-key"}}
PASSPHRASE = {"secretKeyRef": {"name": "payments-keys-passphrase", "key": "passphrase"}}


def _children(**changes: Any) -> desired.Desired:
    return desired.desired_children(specs.parse(body(**changes)), release.steady("blue"))


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _pods(children: desired.Desired) -> dict[str, dict[str, Any]]:
    pods = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]["spec"]
        for d in children.deployments
    }
    pods["migrate"] = children.migration["spec"]["template"]["spec"]
    return pods


def _mounted_secrets(pod: dict[str, Any]) -> list[str]:
    """The Secrets a pod's key volume projects (mounted at the keys directory), in order."""
    [mount] = [m for m in pod["containers"][0].get("volumeMounts", []) if m["name"] == "keys"] or [None]
    volume = next((v for v in pod["volumes"] if v["name"] == "keys"), None)
    assert (mount is None) == (volume is None)
    if volume is None:
        return []
    assert mount["readOnly"] and volume["projected"]["defaultMode"] == 0o400
    return [source["secret"]["name"] for source in volume["projected"]["sources"]]


def test_finding_4_each_pod_is_given_only_its_part_of_the_key_store() -> None:
    """Signing keys only where tokens are issued, PAN keys only in cards, public keys elsewhere; the passphrase
    only where a private part is mounted; the migration touches no key."""
    expected = {
        "auth": (["payments-keys-public", "payments-keys-signing"], True),
        "cards": (["payments-keys-public", "payments-keys-pan"], True),
        "charges": (["payments-keys-public"], False),
        "analytics": (["payments-keys-public"], False),
        "migrate": ([], False),
    }
    for changes in ({}, {"keyRotation": {"schedule": "0 3 * * *"}}):
        pods = _pods(_children(**changes))
        assert sorted(pods) == sorted(expected)
        for name, pod in pods.items():
            env = _env(pod["containers"][0])
            mounted = (_mounted_secrets(pod), "GHOSTPAY_KEYS_PASSPHRASE" in env)
            assert mounted == expected[name], name
            if mounted[1]:
                assert env["GHOSTPAY_KEYS_PASSPHRASE"] == PASSPHRASE


def test_finding_4_the_rotation_job_alone_reaches_every_part() -> None:
    rotation = _children(keyRotation={"schedule": "0 3 * * *"}).key_rotation
    assert rotation is not None
    pod = rotation["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert _env(pod["containers"][0])["GHOSTPAY_KEYS_PASSPHRASE"] == PASSPHRASE
    assert pod["containers"][0]["command"][-4:] == ["--kube-secret", "payments-keys", "--namespace", "shop"]
    assert _mounted_secrets(pod) == []  # it reads and writes the Secrets through the API, under its own Role


def test_with_vault_no_pod_gets_a_local_key_store_or_its_passphrase() -> None:
    children = _children(keyRotation=VAULT)
    assert children.key_rotation is not None
    rotation = children.key_rotation["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for name, pod in [*_pods(children).items(), ("key-rotation", rotation)]:
        assert _mounted_secrets(pod) == [], name
        assert "GHOSTPAY_KEYS_PASSPHRASE" not in _env(pod["containers"][0]), name


@pytest.mark.parametrize("changes", [{}, {"keyRotation": {"schedule": "0 3 * * *", "gracePeriod": "24h"}}])
def test_without_vault_pods_share_one_service_account_and_mount_no_token(changes: dict[str, Any]) -> None:
    children = _children(**changes)
    for name, pod in _pods(children).items():
        assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("payments", False), name
        assert not any(key.startswith("GHOSTPAY_VAULT_") for key in _env(pod["containers"][0])), name
    accounts = [m["metadata"]["name"] for m in children.supporting if m["kind"] == "ServiceAccount"]
    assert accounts == ["payments"]


def test_with_vault_each_service_logs_in_with_its_own_service_account_and_role() -> None:
    children = _children(keyRotation=VAULT)
    pods = _pods(children)
    for service in specs.SERVICES:
        pod = pods[service]
        assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == (f"payments-{service}", True)
        env = _env(pod["containers"][0])
        assert (env["GHOSTPAY_VAULT_ADDR"], env["GHOSTPAY_VAULT_ROLE"], env["GHOSTPAY_VAULT_JWT_KEY"]) == (
            "https://vault.example:8200",
            f"gp-{service}",
            "jwt-key",
        )
    accounts = {m["metadata"]["name"]: m for m in children.supporting if m["kind"] == "ServiceAccount"}
    assert sorted(accounts) == ["payments", *(f"payments-{s}" for s in sorted(specs.SERVICES))]
    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())  # pods opt in


def test_with_vault_the_migration_gets_the_settings_but_no_token() -> None:
    pod = _pods(_children(keyRotation=VAULT))["migrate"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("payments", False)
    env = _env(pod["containers"][0])
    assert env["GHOSTPAY_VAULT_ADDR"] == "https://vault.example:8200" and env["GHOSTPAY_VAULT_JWT_KEY"] == "jwt-key"


def test_turning_vault_on_is_a_release_of_the_services() -> None:
    parsed = specs.parse(body())
    assert workloads.template_hash(parsed) != workloads.template_hash(specs.parse(body(keyRotation=VAULT)))
    assert workloads.template_hash(parsed) == workloads.template_hash(
        specs.parse(body(keyRotation={"schedule": "0 3 * * *"}))
    )


def test_a_new_key_waits_for_the_mounted_secret_to_reach_every_pod_before_it_signs() -> None:
    local = _children(keyRotation={"schedule": "0 3 * * *"})
    config_map = next(m for m in local.supporting if m["kind"] == "ConfigMap")
    assert float(config_map["data"]["GHOSTPAY_KEY_ACTIVATION_DELAY_SECONDS"]) >= 120  # kubelet refresh + verifiers'
    assert local.key_rotation is not None
    rotation_env = _env(local.key_rotation["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0])
    assert (
        rotation_env["GHOSTPAY_KEY_ACTIVATION_DELAY_SECONDS"]
        == config_map["data"]["GHOSTPAY_KEY_ACTIVATION_DELAY_SECONDS"]
    )
    vault = next(m for m in _children(keyRotation=VAULT).supporting if m["kind"] == "ConfigMap")
    assert "GHOSTPAY_KEY_ACTIVATION_DELAY_SECONDS" not in vault["data"]  # Vault publishes at once: the default holds


def test_finding_9_a_redis_url_from_a_secret_never_reaches_the_config_map() -> None:
    children = _children(redis={"secretRef": {"name": "payments-redis"}})
    config_map = next(m for m in children.supporting if m["kind"] == "ConfigMap")
    assert "GHOSTPAY_REDIS_URL" not in config_map["data"]
    for name, pod in _pods(children).items():
        redis_url = {"secretKeyRef": {"name": "payments-redis", "key": "url"}}
        assert _env(pod["containers"][0])["GHOSTPAY_REDIS_URL"] == redis_url, name
    plain = next(m for m in _children().supporting if m["kind"] == "ConfigMap")
    assert plain["data"]["GHOSTPAY_REDIS_URL"] == "redis://redis.shop:6379/0"


ADMIN_ENV = {
    "GHOSTPAY_ADMIN_CLIENT_ID": {"secretKeyRef": {"name": "payments-admin", "key": "client_id"}},
    "GHOSTPAY_ADMIN_CLIENT_SECRET": {"secretKeyRef": {"name": "payments-admin", "key": "client_secret"}},
}


@pytest.mark.parametrize(
    ("changes", "auth_env"),
    [
        ({}, {}),  # no spec.admin: no admin variables anywhere
        ({"admin": {"secretRef": {"name": "payments-admin"}}}, ADMIN_ENV),
        ({"admin": {"secretRef": {"name": "payments-admin"}}, "keyRotation": VAULT}, ADMIN_ENV),
        ({"admin": {}}, {}),  # an admin without a secretRef makes no admin
    ],
)
def test_the_bootstrap_admin_comes_from_its_secret_into_auth_only(
    changes: dict[str, Any], auth_env: dict[str, Any]
) -> None:
    children = _children(**changes)
    for name, pod in _pods(children).items():
        env = _env(pod["containers"][0])
        admin = {key: value for key, value in env.items() if key.startswith("GHOSTPAY_ADMIN_")}
        assert admin == (auth_env if name == "auth" else {}), name
    config_map = next(m for m in children.supporting if m["kind"] == "ConfigMap")
    assert not any(key.startswith("GHOSTPAY_ADMIN_") for key in config_map["data"])


def test_naming_an_admin_secret_is_a_release_of_the_services() -> None:
    """The auth pods' environment changes, so the pod template does: the admin is made by the new pods."""
    with_admin = specs.parse(body(admin={"secretRef": {"name": "payments-admin"}}))
    assert workloads.template_hash(specs.parse(body())) != workloads.template_hash(with_admin)


def test_a_private_vault_ca_is_mounted_into_the_pods_that_log_in_and_named_to_them() -> None:
    """`vault.caSecretRef`: its one key (not the rest of the Secret, e.g. a TLS private key beside it) is mounted
    read-only into every service and the key-rotation Job, which trust it for Vault's certificate; the migration,
    which never talks to Vault, gets nothing."""
    with_ca = {"vault": {**VAULT["vault"], "caSecretRef": {"name": "vault-tls"}}}
    cronjob = rotation.cronjob(specs.parse(body(keyRotation=with_ca)))
    pods = {
        **_pods(_children(keyRotation=with_ca)),
        "key-rotation": cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    }
    for workload, pod in pods.items():
        volume = next((v for v in pod["volumes"] if v["name"] == "vault-ca"), None)
        mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "vault-ca"]
        env = _env(pod["containers"][0])
        if workload == "migrate":
            assert volume is None and not mounts and "GHOSTPAY_VAULT_CA_CERT" not in env
            continue
        assert volume == {
            "name": "vault-ca",
            "secret": {"secretName": "vault-tls", "items": [{"key": "ca.crt", "path": "ca.crt"}], "defaultMode": 0o444},
        }, workload
        assert mounts == [{"name": "vault-ca", "mountPath": "/etc/ghostpay/vault-ca", "readOnly": True}], workload
        assert env["GHOSTPAY_VAULT_CA_CERT"] == "/etc/ghostpay/vault-ca/ca.crt", workload
    # Without caSecretRef: the system's CAs, nothing mounted.
    plain = _pods(_children(keyRotation=VAULT))["charges"]
    assert not any(v["name"] == "vault-ca" for v in plain["volumes"])
    assert "GHOSTPAY_VAULT_CA_CERT" not in _env(plain["containers"][0])
