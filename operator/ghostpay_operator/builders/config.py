"""The configuration objects of an instance: its ServiceAccount and the ConfigMap every service reads."""

from __future__ import annotations

from ghostpay_operator.builders import meta
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import InstanceSpec

KEYS_DIR = "/var/run/ghostpay/keys"


def config_name(spec: InstanceSpec) -> str:
    return meta.child_name(spec, "config")


def service_account_name(spec: InstanceSpec) -> str:
    return spec.name


def config_data(spec: InstanceSpec) -> dict[str, str]:
    """Non-secret settings, as the services' GHOSTPAY_* environment."""
    return {
        "GHOSTPAY_REDIS_URL": spec.redis_url,
        "GHOSTPAY_RATE_LIMITS": spec.rate_limits_json(),
        "GHOSTPAY_KEYS_DIR": KEYS_DIR,
        "GHOSTPAY_LOG_LEVEL": "INFO",
    }


def config_map(spec: InstanceSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta.object_meta(spec, config_name(spec)),
        "data": config_data(spec),
    }


def service_account(spec: InstanceSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta.object_meta(spec, service_account_name(spec)),
        "automountServiceAccountToken": False,
    }
