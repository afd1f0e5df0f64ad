"""The services' Services: ClusterIP, or NodePort where `spec.services.<name>.nodePort` asks for one."""

from __future__ import annotations

from typing import Any

import pytest

from ghostpay_operator import release
from ghostpay_operator import spec as specs
from ghostpay_operator.builders import desired
from tests.operator.support.samples import body

NODE_PORTS = {"auth": 30080, "cards": 30081, "charges": 30082, "analytics": 30083}
CLUSTER_IP: dict[str, tuple[str, int | None]] = dict.fromkeys(specs.SERVICES, ("ClusterIP", None))


def _services(plan: release.Plan, **changes: Any) -> dict[str, dict[str, Any]]:
    children = desired.desired_children(specs.parse(body(**changes)), plan)
    return {m["metadata"]["name"]: m["spec"] for m in children.routing if m["kind"] == "Service"}


def _exposure(service: dict[str, Any]) -> tuple[str, int | None]:
    [port] = service["ports"]
    return service["type"], port.get("nodePort")


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        # no nodePort anywhere: every Service is ClusterIP, with no nodePort
        ({}, CLUSTER_IP),
        # one service exposed: only its Service is a NodePort
        ({"charges": {"nodePort": 30082}}, {**CLUSTER_IP, "charges": ("NodePort", 30082)}),
        # all four, as the chart's demo asks
        ({n: {"nodePort": p} for n, p in NODE_PORTS.items()}, {n: ("NodePort", p) for n, p in NODE_PORTS.items()}),
        # replicas set beside it change nothing about the exposure
        ({"auth": {"replicas": 3, "nodePort": 32767}}, {**CLUSTER_IP, "auth": ("NodePort", 32767)}),
    ],
)
def test_node_port_exposes_the_active_service_only(
    services: dict[str, Any], expected: dict[str, tuple[str, int | None]]
) -> None:
    for plan in (release.steady("blue"), release.steady("green")):
        built = _services(plan, services=services)
        assert {name: _exposure(built[f"payments-{name}"]) for name in specs.SERVICES} == expected
        for name in specs.SERVICES:  # a preview Service never takes the node port (one port, one Service)
            assert _exposure(built[f"payments-{name}-preview"]) == ("ClusterIP", None)
            assert built[f"payments-{name}"]["ports"][0]["port"] == 80
