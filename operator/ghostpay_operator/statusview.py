"""`ghostpay status`: an instance as a tree, like `kubectl argo rollouts get` — phase and reason, the release in
progress, and each service's colours with their versions and ready/desired pods. `render` is pure; `main` reads
the instance and its Deployments (`kube.instance_tree`)."""

from __future__ import annotations

from typing import Any

from ghostpay_operator.builders import names
from ghostpay_operator.releaseplan import DEFAULT_ACTIVE
from ghostpay_operator.spec import SERVICES
from ghostpay_operator.vocabulary import COLORS

_MARK = {"Healthy": "✔", "Progressing": "◌", "Pending": "◌", "Degraded": "✖", "RolledBack": "↺"}


def _condition(status: dict[str, Any], condition_type: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c.get("type") == condition_type), {})


def _headline(status: dict[str, Any]) -> tuple[str, str]:
    """The reason and message that best explain the phase."""
    for condition_type in ("Degraded", "Progressing"):
        found = _condition(status, condition_type)
        if found.get("status") == "True":
            return found.get("reason", ""), found.get("message", "")
    ready = _condition(status, "Ready")
    return ready.get("reason", ""), ready.get("message", "")


def render(instance: dict[str, Any], deployments: list[dict[str, Any]]) -> str:
    metadata, spec, status = instance["metadata"], instance.get("spec", {}), instance.get("status", {})
    phase = status.get("phase", "Pending")
    reason, message = _headline(status)
    active = status.get("activeColor", DEFAULT_ACTIVE)
    lines = [
        f"Name:       {metadata['name']}",
        f"Namespace:  {metadata['namespace']}",
        f"Phase:      {_MARK.get(phase, '?')} {phase}" + (f"  ({reason})" if reason else ""),
        f"Strategy:   {spec.get('release', {}).get('strategy', 'BlueGreen')}",
        f"Version:    {spec.get('version', '?')} (active {status.get('activeVersion', '-')} on {active}; "
        f"previous {status.get('previousVersion', '-')})",
        f"Ready:      {status.get('readyText', '-')}",
    ]
    if message:
        lines.insert(3, f"Message:    {message}")
    release = status.get("release")
    if release:
        lines.append(
            f"Release:    {release.get('version')} on {release.get('color')} since {release.get('started_at')}"
            f" — {release.get('outcome')}" + (f", step {release['step'] + 1}" if "step" in release else "")
        )
    lines.append("")
    lines.append(f"{metadata['name']} (GhostPayInstance)")
    by_name = {d["metadata"]["name"]: d for d in deployments}
    for index, service in enumerate(SERVICES):
        last_service = index == len(SERVICES) - 1
        lines.append(("└── " if last_service else "├── ") + service)
        colors = [c for c in COLORS if names.deployment(metadata["name"], service, c) in by_name]
        for position, color in enumerate(colors):
            deployment = by_name[names.deployment(metadata["name"], service, color)]
            labels = deployment["metadata"].get("labels", {})
            ready = (deployment.get("status") or {}).get("readyReplicas", 0)
            desired = deployment["spec"].get("replicas", 0)
            branch = "    " if last_service else "│   "
            tip = "└── " if position == len(colors) - 1 else "├── "
            role = "● active" if color == active else ("preview" if release else "")
            lines.append(
                f"{branch}{tip}{color:<6} {labels.get('app.kubernetes.io/version', '?'):<10} "
                f"{ready}/{desired} ready  {role}".rstrip()
            )
    return "\n".join(lines) + "\n"
