"""The configuration objects of an instance: its ServiceAccounts and the ConfigMap every service reads."""

from __future__ import annotations

from ghostpay_operator import ratelimits
from ghostpay_operator.builders import meta, names
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import SERVICES, InstanceSpec

KEYS_DIR = "/var/run/ghostpay/keys"
# A rotated key store reaches the pods through the kubelet's refresh of the mounted Secret (a minute or so), then
# each verifier's own refresh: a new key may sign only after every pod can have seen it.
MOUNTED_KEYS_ACTIVATION_DELAY_SECONDS = "300"
# Settings that reach running pods without a restart (the rate limits, through Redis: `ratelimits`). The ConfigMap
# still carries them, as the defaults a pod starts with while the policy key is absent, but they are left out of
# the pods' config hash, so changing them changes no pod template and starts no release.
LIVE_SETTINGS = ("GHOSTPAY_RATE_LIMITS",)


def key_settings(spec: InstanceSpec) -> dict[str, str]:
    """How long a new signing key waits before it signs: longer when keys travel through a mounted Secret."""
    if spec.vault is not None:
        return {}
    return {"GHOSTPAY_KEY_ACTIVATION_DELAY_SECONDS": MOUNTED_KEYS_ACTIVATION_DELAY_SECONDS}


def config_data(spec: InstanceSpec) -> dict[str, str]:
    """Non-secret settings, as the services' GHOSTPAY_* environment."""
    redis = {"GHOSTPAY_REDIS_URL": spec.redis_url} if spec.redis_url else {}  # else from its Secret (pods)
    return {
        **redis,
        "GHOSTPAY_RATE_LIMITS": spec.rate_limits_json(),
        "GHOSTPAY_RATE_LIMIT_POLICY_KEY": ratelimits.policy_key(spec),
        "GHOSTPAY_KEYS_DIR": KEYS_DIR,
        "GHOSTPAY_LOG_LEVEL": "INFO",
        **key_settings(spec),
    }


def restart_data(spec: InstanceSpec) -> dict[str, str]:
    """The settings a pod reads only at start: a change to them needs new pods (the pod template's config hash)."""
    return {name: value for name, value in config_data(spec).items() if name not in LIVE_SETTINGS}


def config_map(spec: InstanceSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta.object_meta(spec, names.config_map(spec.name)),
        "data": config_data(spec),
    }


def service_account(spec: InstanceSpec, name: str) -> Manifest:
    """No token by default: the pods that need one (to log in to Vault) ask for it themselves."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta.object_meta(spec, name),
        "automountServiceAccountToken": False,
    }


def service_accounts(spec: InstanceSpec) -> list[Manifest]:
    """The shared ServiceAccount (the migration Job's, and the services' without Vault), plus one per service in
    Vault mode."""
    accounts = dict.fromkeys([names.workload_account(spec), *(names.workload_account(spec, s) for s in SERVICES)])
    return [service_account(spec, name) for name in accounts]
