"""What a pass reads: its children from the watch-fed caches (no request at all, and only its own), Secrets by name
— never a LIST of its children, never a child object by object. (A full pass also asks whether the cluster serves
the Prometheus Operator's kinds: `Kube.monitoring`, one LIST each of the instance's ServiceMonitor and rule.)"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, cast

from ghostpay_operator.builders import names
from ghostpay_operator.kube import Kube
from ghostpay_operator.observe import observe
from tests.operator.support.samples import body


def _secret(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


class _SecretsOnly:
    """A facade that can only GET Secrets by name (any other read would fail), and remembers which."""

    def __init__(self, secrets: list[dict[str, Any]]) -> None:
        self.secrets = {s["metadata"]["name"]: s for s in secrets}
        self.read: list[str] = []

    async def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        assert namespace == "shop"
        self.read.append(name)
        return self.secrets.get(name)

    async def monitoring(self, namespace: str, instance: str) -> None:
        self.read.append("monitoring")
        return None  # this cluster does not serve the Prometheus Operator's kinds


def _child(kind: str, name: str) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": "shop"}}


async def test_a_pass_takes_its_children_from_the_caches_and_reads_only_secrets_by_name() -> None:
    key_store = [names.key_passphrase_secret("payments"), *names.key_part_secrets("payments")]
    kube = _SecretsOnly([_secret("payments-db", dsn="postgresql://db/ghostpay"), *(_secret(n) for n in key_store)])
    mine = _child("Deployment", "payments-cards-blue")
    owned = {
        "Deployment": {
            ("shop", "payments"): [mine],
            ("shop", "other"): [_child("Deployment", "other-cards-blue")],  # another instance's
            ("elsewhere", "payments"): [_child("Deployment", "payments-cards-green")],  # a namesake's elsewhere
        },
        "Service": {},
    }
    obs = await observe(cast(Kube, kube), owned, body(), datetime(2026, 1, 1, tzinfo=UTC), full=True)
    assert obs.children == {"Deployment": {"payments-cards-blue": mine}, "Service": {}}
    assert sorted(kube.read) == sorted(["payments-db", *key_store, "monitoring"])
    assert obs.referenced_problem is None and set(obs.key_secrets) == set(key_store)
