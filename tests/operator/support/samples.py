"""GhostPayInstance bodies for the operator's pure tests."""

from __future__ import annotations

import copy
from typing import Any

MINIMAL: dict[str, Any] = {
    "apiVersion": "ghostpay.io/v1alpha1",
    "kind": "GhostPayInstance",
    "metadata": {"name": "payments", "namespace": "shop", "uid": "uid-1", "generation": 3},
    "spec": {
        "image": "ghcr.io/example/ghostpay",
        "version": "1.4.0",
        "database": {"secretRef": {"name": "payments-db"}},
        "redis": {"url": "redis://redis.shop:6379/0"},
    },
}


def body(**spec_changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(MINIMAL)
    result["spec"].update(spec_changes)
    return result
