"""Everything an instance should own, in apply order, given what the operator has observed."""

from __future__ import annotations

from dataclasses import dataclass

from ghostpay_operator.builders import config, meta, networking, workloads
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import SERVICES, InstanceSpec


@dataclass(frozen=True)
class Desired:
    """Children to apply now; `migration` runs first, and the Deployments wait until it has succeeded."""

    supporting: list[Manifest]
    migration: Manifest
    deployments: list[Manifest]


def desired_children(spec: InstanceSpec, active_color: str) -> Desired:
    supporting = [config.service_account(spec), config.config_map(spec)]
    for name in SERVICES:
        supporting += [networking.service(spec, name, active_color), networking.disruption_budget(spec, name)]
    deployments = [workloads.deployment(spec, name, active_color, spec.services[name].replicas) for name in SERVICES]
    return Desired(
        supporting=[meta.stamped(m) for m in supporting],
        migration=meta.stamped(workloads.migration_job(spec)),
        deployments=[meta.stamped(m) for m in deployments],
    )
