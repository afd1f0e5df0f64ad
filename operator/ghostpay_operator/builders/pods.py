"""The pod template shared by the services' Deployments and the migration Job: hardened, configured from the
ConfigMap and the database Secret, never running as root."""

from __future__ import annotations

from typing import Any

from ghostpay_operator.builders import config, meta
from ghostpay_operator.spec import InstanceSpec

HTTP_PORT = 8000
KEYS_SECRET_SUFFIX = "keys"  # noqa: S105 - a name, not a secret
UID = 10001


def keys_secret_name(spec: InstanceSpec) -> str:
    return meta.child_name(spec, KEYS_SECRET_SUFFIX)


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


def environment(spec: InstanceSpec, values: dict[str, str] | None = None) -> dict[str, Any]:
    """`env` and `envFrom` of every GhostPay container: the DSN from its Secret, the rest from the ConfigMap,
    plus `values` that differ between colours (so cannot live in the shared ConfigMap)."""
    return {
        "env": [
            {
                "name": "GHOSTPAY_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": spec.database_secret, "key": spec.database_key}},
            },
            *({"name": name, "value": value} for name, value in sorted((values or {}).items())),
        ],
        "envFrom": [{"configMapRef": {"name": config.config_name(spec)}}],
    }


def volumes(spec: InstanceSpec) -> list[dict[str, Any]]:
    return [
        {"name": "tmp", "emptyDir": {}},
        {"name": "keys", "secret": {"secretName": keys_secret_name(spec), "defaultMode": 0o400}},
    ]


def volume_mounts() -> list[dict[str, Any]]:
    return [
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir: the root filesystem is read-only
        {"name": "keys", "mountPath": config.KEYS_DIR, "readOnly": True},
    ]


def pod_spec(spec: InstanceSpec, containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "serviceAccountName": config.service_account_name(spec),
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "containers": containers,
        "volumes": volumes(spec),
        **extra,
    }
