"""The names of everything an instance owns, composed here and nowhere else.

The builders name the objects they make with these, the reconcile pass finds them by these, and `ghostpay status`
(`statusview`) reads Deployments by these. All start with the instance's name (`<instance>-…`). Most need only
that name; the few that depend on more of the spec (Vault mode, the image) take the spec.
"""

from __future__ import annotations

from ghostpay.core.keys.local import PARTS, Part
from ghostpay_operator.builders.meta import content_hash
from ghostpay_operator.spec import InstanceSpec
from ghostpay_operator.vocabulary import Color

KEY_ROTATION = "key-rotation"  # the component name of the key-rotation CronJob, its Jobs and its access
KEY_STORE = "keys"  # the component name of the key store's Secrets


def child(instance: str, *parts: str) -> str:
    return "-".join((instance, *parts))


def config_map(instance: str) -> str:
    return child(instance, "config")


def service(instance: str, service: str) -> str:
    """The Service routing to `service`'s serving colour (its PodDisruptionBudget has the same name)."""
    return child(instance, service)


def preview_service(instance: str, service: str) -> str:
    """The Service that reaches the new colour during a blue-green release."""
    return child(instance, service, "preview")


def disruption_budget(instance: str, service: str) -> str:
    return child(instance, service)


def deployment(instance: str, service: str, color: Color) -> str:
    return child(instance, service, color)


def workload_account(spec: InstanceSpec, service: str | None = None) -> str:
    """The ServiceAccount the services and the migration Job run as: a shared one, or in Vault mode `service`'s
    own — a Vault Kubernetes-auth role binds ServiceAccount names, so one role (one policy) per service needs one
    ServiceAccount per service."""
    if service is not None and spec.vault is not None:
        return child(spec.name, service)
    return spec.name


def migration_job(spec: InstanceSpec) -> str:
    """One Job per image: a new version migrates once, and re-applying the same version finds it done."""
    return child(spec.name, "migrate", content_hash(spec.image_ref)[:10])


def key_rotation_cronjob(instance: str) -> str:
    return child(instance, KEY_ROTATION)


def key_rotation_account(instance: str) -> str:
    """The key-rotation Job's own ServiceAccount (and its Role and RoleBinding): a Vault role
    (`<vault.role>-key-rotation`) or a Role binds to this name alone."""
    return child(instance, KEY_ROTATION)


def key_store(instance: str) -> str:
    """`<instance>-keys`: the prefix of the key store's Secrets (what `ghostpay keys rotate --kube-secret` takes)."""
    return child(instance, KEY_STORE)


def key_part_secret(instance: str, part: Part) -> str:
    return f"{key_store(instance)}-{part}"


def key_part_secrets(instance: str) -> list[str]:
    return [key_part_secret(instance, part) for part in PARTS]


def key_passphrase_secret(instance: str) -> str:
    """The Secret holding the passphrase that encrypts the private parts of the key store."""
    return f"{key_store(instance)}-passphrase"


def metrics_service(instance: str, service: str) -> str:
    """The headless Service over `service`'s metrics port that the ServiceMonitor selects (Prometheus Operator)."""
    return child(instance, service, "metrics")


def monitoring(instance: str) -> str:
    """The instance's ServiceMonitor and PrometheusRule (two kinds, one name)."""
    return instance
