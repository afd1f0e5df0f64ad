"""The pod template shared by the services' Deployments, the migration Job and the key-rotation Job: hardened,
configured from the ConfigMap and the Secrets, never running as root."""

from __future__ import annotations

from typing import Any

from ghostpay_operator.builders import config, meta
from ghostpay_operator.spec import InstanceSpec

HTTP_PORT = 8000
METRICS_PORT = 9090  # `ghostpay serve` answers /metrics here only; no Service exposes it (Prometheus scrapes pods)
KEYS_SECRET_SUFFIX = "keys"  # noqa: S105 - a name, not a secret
PASSPHRASE_KEY = "passphrase"  # noqa: S105 - the key inside the passphrase Secret
UID = 10001


def keys_secret_name(spec: InstanceSpec) -> str:
    return meta.child_name(spec, KEYS_SECRET_SUFFIX)


def passphrase_secret_name(spec: InstanceSpec) -> str:
    """The Secret holding the passphrase that encrypts the private keys of the local key store."""
    return meta.child_name(spec, KEYS_SECRET_SUFFIX, "passphrase")


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
    return {
        "GHOSTPAY_VAULT_ADDR": spec.vault.address,
        "GHOSTPAY_VAULT_ROLE": f"{spec.vault.role}-{workload}",
        "GHOSTPAY_VAULT_JWT_KEY": spec.vault.transit_key,
    }


def passphrase_env(spec: InstanceSpec) -> dict[str, Any]:
    return {
        "name": "GHOSTPAY_KEYS_PASSPHRASE",
        "valueFrom": {"secretKeyRef": {"name": passphrase_secret_name(spec), "key": PASSPHRASE_KEY}},
    }


def environment(spec: InstanceSpec, workload: str, values: dict[str, str] | None = None) -> dict[str, Any]:
    """`env` and `envFrom` of the services' and the migration's containers: the DSN and the key-store passphrase
    from their Secrets, the rest from the ConfigMap, plus Vault settings for `workload` and `values` that differ
    between colours (neither can live in the shared ConfigMap)."""
    plain = {**vault_environment(spec, workload), **(values or {})}
    return {
        "env": [
            {
                "name": "GHOSTPAY_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": spec.database_secret, "key": spec.database_key}},
            },
            passphrase_env(spec),
            *({"name": name, "value": value} for name, value in sorted(plain.items())),
        ],
        "envFrom": [{"configMapRef": {"name": config.config_name(spec)}}],
    }


TMP_VOLUME = {"name": "tmp", "emptyDir": {}}
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 - an emptyDir: the root filesystem is read-only


def volumes(spec: InstanceSpec) -> list[dict[str, Any]]:
    return [
        TMP_VOLUME,
        {"name": "keys", "secret": {"secretName": keys_secret_name(spec), "defaultMode": 0o400}},
    ]


def volume_mounts() -> list[dict[str, Any]]:
    return [TMP_MOUNT, {"name": "keys", "mountPath": config.KEYS_DIR, "readOnly": True}]


def pod_spec(
    spec: InstanceSpec,
    containers: list[dict[str, Any]],
    service_account: str | None = None,
    token: bool = False,
    pod_volumes: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A hardened pod. `token` mounts the ServiceAccount token: only pods that log in with it (to Vault, or to
    the API server) get one."""
    return {
        "serviceAccountName": service_account or config.service_account_name(spec),
        "automountServiceAccountToken": token,
        "securityContext": pod_security_context(),
        "containers": containers,
        "volumes": volumes(spec) if pod_volumes is None else pod_volumes,
        **extra,
    }
