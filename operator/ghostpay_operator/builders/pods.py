"""The pod template shared by the services' Deployments, the migration Job and the key-rotation Job: hardened,
configured from the ConfigMap and the Secrets, never running as root."""

from __future__ import annotations

from typing import Any

from ghostpay_operator.builders import config, keys, names
from ghostpay_operator.spec import InstanceSpec

HTTP_PORT = 8000
METRICS_PORT = 9090  # `ghostpay serve` answers /metrics here only; no Service exposes it (Prometheus scrapes pods)
UID = 10001


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def vault_environment(spec: InstanceSpec, workload: str) -> dict[str, str]:
    """In Vault mode, where Vault is and how `workload` logs in. Each workload has its own Kubernetes-auth role
    (`<vault.role>-<workload>`, bound to its own ServiceAccount), so each gets only its own Vault policy. The
    transit and auth mounts and the PAN key keep the services' defaults (transit, kubernetes, ghostpay-pan)."""
    if spec.vault is None:
        return {}
    ca = {"GHOSTPAY_VAULT_CA_CERT": VAULT_CA_FILE} if vault_ca_volume(spec, workload) else {}
    return {
        "GHOSTPAY_VAULT_ADDR": spec.vault.address,
        "GHOSTPAY_VAULT_ROLE": f"{spec.vault.role}-{workload}",
        "GHOSTPAY_VAULT_JWT_KEY": spec.vault.transit_key,
        **ca,
    }


VAULT_CA_DIR = "/etc/ghostpay/vault-ca"
VAULT_CA_FILE = f"{VAULT_CA_DIR}/ca.crt"
VAULT_CA_MOUNT = {"name": "vault-ca", "mountPath": VAULT_CA_DIR, "readOnly": True}


def vault_ca_volume(spec: InstanceSpec, workload: str) -> dict[str, Any] | None:
    """`vault.caSecretRef`'s one key (the CA bundle, never anything else the Secret holds), for the workloads that
    log in to Vault: not the migration, which never does."""
    if spec.vault is None or spec.vault.ca_secret is None or workload == "migrate":
        return None
    items = [{"key": spec.vault.ca_key, "path": "ca.crt"}]
    return {"name": "vault-ca", "secret": {"secretName": spec.vault.ca_secret, "items": items, "defaultMode": 0o444}}


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    """A variable read from a Secret: credentials never go into the ConfigMap."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def passphrase_env(spec: InstanceSpec) -> dict[str, Any]:
    return secret_env("GHOSTPAY_KEYS_PASSPHRASE", names.key_passphrase_secret(spec.name), keys.PASSPHRASE_KEY)


def admin_environment(spec: InstanceSpec) -> list[dict[str, Any]]:
    """The bootstrap admin (`spec.admin.secretRef`) for the auth pods: they create it, or reset its secret, at start."""
    if spec.admin_secret is None:
        return []
    return [
        secret_env("GHOSTPAY_ADMIN_CLIENT_ID", spec.admin_secret, "client_id"),
        secret_env("GHOSTPAY_ADMIN_CLIENT_SECRET", spec.admin_secret, "client_secret"),
    ]


def environment(spec: InstanceSpec, workload: str, values: dict[str, str] | None = None) -> dict[str, Any]:
    """`env` and `envFrom` of the services' and the migration's containers: the DSN from its Secret, the key
    store's passphrase only where a private part of it is used (auth, cards; never with Vault), the bootstrap
    admin's credentials from their Secret in auth only, the rest from
    the ConfigMap, plus Vault settings for `workload` and `values` that differ between colours (neither can live
    in the shared ConfigMap)."""
    plain = {**vault_environment(spec, workload), **(values or {})}
    passphrase = [passphrase_env(spec)] if spec.vault is None and keys.needs_passphrase(workload) else []
    redis = [secret_env("GHOSTPAY_REDIS_URL", spec.redis_secret, spec.redis_key)] if spec.redis_secret else []
    admin = admin_environment(spec) if workload == "auth" else []
    return {
        "env": [
            secret_env("GHOSTPAY_DATABASE_URL", spec.database_secret, spec.database_key),
            *redis,
            *admin,
            *passphrase,
            *({"name": name, "value": value} for name, value in sorted(plain.items())),
        ],
        "envFrom": [{"configMapRef": {"name": names.config_map(spec.name)}}],
    }


TMP_VOLUME = {"name": "tmp", "emptyDir": {}}
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 - an emptyDir: the root filesystem is read-only


def volumes(spec: InstanceSpec, workload: str) -> list[dict[str, Any]]:
    key_volume, ca_volume = keys.volume(spec, workload), vault_ca_volume(spec, workload)
    return [TMP_VOLUME, *([key_volume] if key_volume else []), *([ca_volume] if ca_volume else [])]


def volume_mounts(spec: InstanceSpec, workload: str) -> list[dict[str, Any]]:
    key_mount = {"name": "keys", "mountPath": config.KEYS_DIR, "readOnly": True}
    ca_mount = [VAULT_CA_MOUNT] if vault_ca_volume(spec, workload) else []
    return [TMP_MOUNT, *([key_mount] if keys.volume(spec, workload) else []), *ca_mount]


def pod_spec(
    spec: InstanceSpec,
    containers: list[dict[str, Any]],
    pod_volumes: list[dict[str, Any]],
    service_account: str | None = None,
    token: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A hardened pod. `token` mounts the ServiceAccount token: only pods that log in with it (to Vault, or to
    the API server) get one."""
    return {
        "serviceAccountName": service_account or names.workload_account(spec),
        "automountServiceAccountToken": token,
        "securityContext": pod_security_context(),
        "containers": containers,
        "volumes": pod_volumes,
        **extra,
    }
