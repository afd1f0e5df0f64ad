"""What a pass reads: its children from the watch-fed caches (no request at all, and only its own), Secrets by name
— never a LIST of its children, never a child object by object. (A full pass also asks whether the cluster serves
the Prometheus Operator's kinds: `Kube.monitoring`, one LIST each of the instance's ServiceMonitor and rule.)"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, cast

from ghostpay_operator.builders import names
from ghostpay_operator.kube import Kube
from ghostpay_operator.observe import Checked, observe
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


async def test_a_workloads_pass_takes_the_verdict_on_the_database_secret_from_a_pass_of_its_generation() -> None:
    """A workloads-only pass (after a child's event) needs of the Secrets the spec names only whether they are usable:
    once a pass of this process has read them for this generation, it reads none; a full pass always does."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    kube = _SecretsOnly([])  # no database Secret
    checked: Checked = {}
    owned: dict[str, Any] = {"Deployment": {}, "Job": {}}
    first = await observe(cast(Kube, kube), owned, body(), now, full=False, checked=checked)
    assert kube.read == ["payments-db"]  # nothing known yet: read
    assert first.referenced_problem is not None and first.referenced_problem.reason == "DatabaseSecretMissing"
    assert checked == {"uid-1": (3, first.referenced_problem)}  # the verdict, no value of a Secret

    again = await observe(cast(Kube, kube), owned, body(), now, full=False, checked=checked)
    assert kube.read == ["payments-db"]  # no request
    assert again.referenced_problem == first.referenced_problem

    kube.secrets["payments-db"] = _secret("payments-db", dsn="postgresql://db/ghostpay")  # the user fixes it
    full = await observe(cast(Kube, kube), owned, body(), now, full=True, checked=checked)
    assert kube.read.count("payments-db") == 2  # a full pass reads it, and its verdict replaces the old one
    assert full.referenced_problem is None and checked["uid-1"] == (3, None)
    kube.read.clear()
    assert (await observe(cast(Kube, kube), owned, body(), now, full=False, checked=checked)).referenced_problem is None
    assert kube.read == []

    newer = body()
    newer["metadata"]["generation"] = 4  # a spec change not yet seen by a full pass: read again
    await observe(cast(Kube, kube), owned, newer, now, full=False, checked=checked)
    assert kube.read == ["payments-db"] and checked["uid-1"] == (4, None)
