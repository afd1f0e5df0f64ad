"""Per service: the Service that routes to the active colour, and the PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

from ghostpay_operator.builders import meta, names
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import InstanceSpec
from ghostpay_operator.vocabulary import Color


def service(spec: InstanceSpec, name: str, color: Color | None, preview: bool = False) -> Manifest:
    """The service's Service (or its preview Service during a release): one colour, or both (`None`, canary).
    With `spec.services.<name>.nodePort` the (active) Service is a NodePort on that port; a preview Service
    never is (only one Service can hold a node port)."""
    selector = meta.color_selector(spec, name, color) if color else meta.service_selector(spec, name)
    full_name = names.preview_service(spec.name, name) if preview else names.service(spec.name, name)
    port: dict[str, Any] = {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    node_port = None if preview else spec.services[name].node_port
    if node_port is not None:
        port["nodePort"] = node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.object_meta(spec, full_name, {"app.kubernetes.io/component": name}),
        "spec": {
            "type": "ClusterIP" if node_port is None else "NodePort",
            "selector": selector,
            "ports": [port],
        },
    }


def disruption_budget(spec: InstanceSpec, name: str) -> Manifest:
    """Voluntary evictions keep all but one pod of the service up (so always at least one)."""
    replicas = spec.services[name].replicas
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta.object_meta(
            spec, names.disruption_budget(spec.name, name), {"app.kubernetes.io/component": name}
        ),
        "spec": {
            "minAvailable": max(1, replicas - 1),
            "selector": {"matchLabels": meta.service_selector(spec, name)},
        },
    }
