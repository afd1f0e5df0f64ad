"""Labels, owner references and the spec hash every child object carries (`names` composes their names)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import GROUP, KIND, VERSION, InstanceSpec

SPEC_HASH = "ghostpay.io/spec-hash"
MANAGED_BY = "ghostpay-operator"
COLOR_LABEL = "ghostpay.io/color"
FIELD_MANAGER = "ghostpay-operator"


def owned_selector(instance: str) -> dict[str, str]:
    """The label selector of everything the operator made for `instance` (its LISTs and `ghostpay status` use it)."""
    return {"app.kubernetes.io/instance": instance, "app.kubernetes.io/managed-by": MANAGED_BY}


def instance_labels(spec: InstanceSpec) -> dict[str, str]:
    """Labels on every child: how the operator finds what it owns (`owned_selector` selects them)."""
    return {"app.kubernetes.io/name": "ghostpay", **owned_selector(spec.name)}


def service_selector(spec: InstanceSpec, service: str) -> dict[str, str]:
    return {"app.kubernetes.io/instance": spec.name, "app.kubernetes.io/component": service}


def color_selector(spec: InstanceSpec, service: str, color: str) -> dict[str, str]:
    return {**service_selector(spec, service), COLOR_LABEL: color}


def owner_reference(spec: InstanceSpec) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": spec.name,
        "uid": spec.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(spec: InstanceSpec, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": {**instance_labels(spec), **(labels or {})},
        "ownerReferences": [owner_reference(spec)],
    }


def content_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def stamped(manifest: Manifest) -> Manifest:
    """The manifest with a hash of itself in an annotation: equal hashes mean nothing to write."""
    digest = content_hash(manifest)
    metadata = manifest["metadata"]
    return {**manifest, "metadata": {**metadata, "annotations": {**metadata.get("annotations", {}), SPEC_HASH: digest}}}
