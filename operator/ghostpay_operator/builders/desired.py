"""Everything an instance should own, in apply order, given the release plan for this pass."""

from __future__ import annotations

from dataclasses import dataclass, field

from ghostpay_operator.builders import config, meta, monitoring, names, networking, rotation, workloads
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.release import Plan, canary_replicas
from ghostpay_operator.spec import SERVICES, InstanceSpec
from ghostpay_operator.vocabulary import Color


@dataclass(frozen=True)
class Desired:
    """Children to apply now. `migration` runs first; the Deployments on the desired template (`deployments`) wait
    until it has succeeded; Deployments of the other colour keep their template and only change size (`scale`)."""

    supporting: list[Manifest]
    routing: list[Manifest]
    migration: Manifest
    deployments: list[Manifest]
    scale: dict[str, int]  # Deployment name -> replicas
    key_rotation: Manifest | None = None  # the CronJob; None: there should be none
    monitoring: list[Manifest] = field(default_factory=list)  # for the Prometheus Operator, when it is there


def replicas_by_color(replicas: int, plan: Plan) -> dict[Color, int]:
    """One service's pods per colour for the plan's shares (a canary split keeps the total)."""
    new = plan.new_template_color
    result = {color: round(share * replicas) for color, share in plan.share.items()}
    if new is not None and new != plan.stable_color and 0 < plan.share[new] < 1:
        result[new], result[plan.stable_color] = canary_replicas(replicas, round(plan.share[new] * 100))
    return result


def desired_children(spec: InstanceSpec, plan: Plan) -> Desired:
    supporting = [*config.service_accounts(spec), config.config_map(spec)]
    routing: list[Manifest] = []
    deployments: list[Manifest] = []
    scale: dict[str, int] = {}
    for name in SERVICES:
        supporting.append(networking.disruption_budget(spec, name))
        routing.append(networking.service(spec, name, plan.service_selects))
        routing.append(networking.service(spec, name, plan.preview_selects or plan.stable_color, preview=True))
        for color, count in replicas_by_color(spec.services[name].replicas, plan).items():
            if color == plan.new_template_color:
                deployments.append(workloads.deployment(spec, name, color, count))
            else:
                scale[names.deployment(spec.name, name, color)] = count
    return Desired(
        supporting=[meta.stamped(m) for m in supporting],
        routing=[meta.stamped(m) for m in routing],
        migration=meta.stamped(workloads.migration_job(spec)),
        deployments=[meta.stamped(m) for m in deployments],
        scale=scale,
        key_rotation=meta.stamped(rotation.cronjob(spec)) if spec.key_rotation else None,
        monitoring=monitoring.monitoring(spec),
    )
