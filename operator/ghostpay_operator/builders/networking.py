"""Per service: the Service that routes to the active colour, and the PodDisruptionBudget."""

from __future__ import annotations

from ghostpay_operator.builders import meta
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import InstanceSpec


def service_name(spec: InstanceSpec, service: str) -> str:
    return meta.child_name(spec, service)


def service(spec: InstanceSpec, name: str, color: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.object_meta(spec, service_name(spec, name), {"app.kubernetes.io/component": name}),
        "spec": {
            "type": "ClusterIP",
            "selector": meta.color_selector(spec, name, color),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def disruption_budget(spec: InstanceSpec, name: str) -> Manifest:
    """Voluntary evictions keep all but one pod of the service up (so always at least one)."""
    replicas = spec.services[name].replicas
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta.object_meta(spec, service_name(spec, name), {"app.kubernetes.io/component": name}),
        "spec": {
            "minAvailable": max(1, replicas - 1),
            "selector": {"matchLabels": meta.service_selector(spec, name)},
        },
    }
