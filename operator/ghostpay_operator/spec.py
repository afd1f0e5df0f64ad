"""The GhostPayInstance spec as typed, defaulted values: parsed once from the raw object, read everywhere else.

Pure: no I/O. The CRD's schema has already validated and defaulted the object; the defaults here repeat
the CRD's so that an object written before a default existed still parses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ghostpay_operator.kinds import InstanceBody

SERVICES = ("auth", "cards", "charges", "analytics")
GROUP, VERSION, PLURAL, KIND = "ghostpay.io", "v1alpha1", "ghostpayinstances", "GhostPayInstance"


@dataclass(frozen=True)
class ServiceSpec:
    replicas: int
    resources: dict[str, Any]
    node_port: int | None = None  # the active Service as a NodePort on this port (preview Services stay ClusterIP)


@dataclass(frozen=True)
class ReleaseSpec:
    strategy: str = "BlueGreen"
    canary_steps: tuple[int, ...] = (10, 50, 100)
    step_seconds: int = 60
    progress_deadline_seconds: int = 300
    scale_down_delay_seconds: int = 30
    prometheus_url: str | None = None
    max_error_rate: float = 0.01
    max_decline_rate_increase: float = 0.05  # the new version's decline share over the stable one's, at most
    max_charge_p99_ratio: float = 2.0  # the new version's charge p99 over the stable one's, at most
    auto_promotion: bool = True


@dataclass(frozen=True)
class VaultSpec:
    address: str
    role: str = "ghostpay"  # the base of each workload's Kubernetes-auth role: `<role>-<workload>`
    transit_key: str = "ghostpay-jwt"
    ca_secret: str | None = None  # a Secret holding the CA bundle that signed Vault's TLS certificate
    ca_key: str = "ca.crt"


@dataclass(frozen=True)
class KeyRotationSpec:
    schedule: str
    grace_period: str
    vault: VaultSpec | None = None


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    namespace: str
    uid: str
    generation: int
    image: str
    version: str
    services: dict[str, ServiceSpec]
    database_secret: str
    database_key: str
    redis_url: str | None  # in the ConfigMap: a URL without credentials
    rate_limits: dict[str, Any]
    release: ReleaseSpec
    min_replicas: int
    zones: int
    pod_annotations: dict[str, str] = field(default_factory=dict)
    key_rotation: KeyRotationSpec | None = None
    redis_secret: str | None = None  # or a Secret holding the URL, for one that carries a password
    redis_key: str = "url"
    # a Secret with the URL the operator writes the rate-limit policy with (a Redis user allowed only that); unset:
    # the services' URL
    redis_operator_secret: str | None = None
    redis_operator_key: str = "url"
    admin_secret: str | None = None  # a Secret with the bootstrap admin's client_id and client_secret, for auth

    @property
    def image_ref(self) -> str:
        return f"{self.image}:{self.version}"

    @property
    def vault(self) -> VaultSpec | None:
        """Where the keys live: Vault when key rotation names one, else the local key store (a Secret)."""
        return self.key_rotation.vault if self.key_rotation else None

    @property
    def desired_replicas(self) -> int:
        return sum(s.replicas for s in self.services.values())

    def rate_limits_json(self) -> str:
        return json.dumps(self.rate_limits, sort_keys=True)


DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}


def _service(raw: Mapping[str, Any], min_replicas: int) -> ServiceSpec:
    return ServiceSpec(
        replicas=int(raw.get("replicas", min_replicas)),
        resources=dict(raw.get("resources") or DEFAULT_RESOURCES),
        node_port=int(raw["nodePort"]) if raw.get("nodePort") is not None else None,
    )


def _release(raw: Mapping[str, Any]) -> ReleaseSpec:
    analysis = raw.get("analysis") or {}
    return ReleaseSpec(
        strategy=raw.get("strategy", "BlueGreen"),
        canary_steps=tuple(raw.get("canarySteps", (10, 50, 100))),
        step_seconds=int(raw.get("stepSeconds", 60)),
        progress_deadline_seconds=int(raw.get("progressDeadlineSeconds", 300)),
        scale_down_delay_seconds=int(raw.get("scaleDownDelaySeconds", 30)),
        prometheus_url=analysis.get("prometheusUrl"),
        max_error_rate=float(analysis.get("maxErrorRate", 0.01)),
        max_decline_rate_increase=float(analysis.get("maxDeclineRateIncrease", 0.05)),
        max_charge_p99_ratio=float(analysis.get("maxChargeP99Ratio", 2.0)),
        auto_promotion=bool(raw.get("autoPromotion", True)),
    )


def _vault(raw: Mapping[str, Any] | None) -> VaultSpec | None:
    if not raw:
        return None
    ca = raw.get("caSecretRef") or {}
    return VaultSpec(
        raw["address"],
        raw.get("role", "ghostpay"),
        raw.get("transitKey", "ghostpay-jwt"),
        ca.get("name"),
        ca.get("key", "ca.crt"),
    )


DEFAULT_ROTATION_SCHEDULE = "0 3 * * *"  # the CRD's default: every night at 03:00 UTC


def _key_rotation(raw: Mapping[str, Any] | None) -> KeyRotationSpec | None:
    if raw is None:
        return None
    schedule = raw.get("schedule", DEFAULT_ROTATION_SCHEDULE)
    return KeyRotationSpec(schedule, raw.get("gracePeriod", "24h"), _vault(raw.get("vault")))


def parse(body: InstanceBody | Mapping[str, Any]) -> InstanceSpec:
    meta, spec = body["metadata"], body["spec"]
    availability = spec.get("availability") or {}
    min_replicas = int(availability.get("minReplicas", 2))
    services = spec.get("services") or {}
    database = spec["database"]["secretRef"]
    return InstanceSpec(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation", 1)),
        image=spec["image"],
        version=str(spec["version"]),
        services={name: _service(services.get(name) or {}, min_replicas) for name in SERVICES},
        database_secret=database["name"],
        database_key=database.get("key", "dsn"),
        redis_url=spec["redis"].get("url"),
        redis_secret=(spec["redis"].get("secretRef") or {}).get("name"),
        redis_key=(spec["redis"].get("secretRef") or {}).get("key", "url"),
        redis_operator_secret=(spec["redis"].get("operatorSecretRef") or {}).get("name"),
        redis_operator_key=(spec["redis"].get("operatorSecretRef") or {}).get("key", "url"),
        rate_limits=dict(spec.get("rateLimits") or {}),
        release=_release(spec.get("release") or {}),
        min_replicas=min_replicas,
        zones=int(availability.get("zones", 2)),
        pod_annotations=dict(spec.get("podAnnotations") or {}),
        key_rotation=_key_rotation(spec.get("keyRotation")),
        admin_secret=((spec.get("admin") or {}).get("secretRef") or {}).get("name"),
    )
