"""`ghostpay status` renders an instance as a tree (pure), and the command shows it from the cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ghostpay_operator import statusview


def _deployment(service: str, color: str, version: str, ready: int, desired: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"payments-{service}-{color}", "labels": {"app.kubernetes.io/version": version}},
        "spec": {"replicas": desired},
        "status": {"readyReplicas": ready},
    }


INSTANCE = {
    "metadata": {"name": "payments", "namespace": "shop"},
    "spec": {"version": "0.3.0", "release": {"strategy": "BlueGreen"}},
    "status": {
        "phase": "RolledBack",
        "activeColor": "blue",
        "activeVersion": "0.1.0",
        "readyText": "8/8",
        "conditions": [
            {
                "type": "Degraded",
                "status": "True",
                "reason": "ProgressDeadlineExceeded",
                "message": "0.3.0 was not ready within 20 s.",
            }
        ],
        "release": {
            "version": "0.3.0",
            "color": "green",
            "started_at": "2026-01-01T00:00:00Z",
            "outcome": "RolledBack",
        },
    },
}


def test_the_tree_shows_phase_reason_release_and_each_color() -> None:
    deployments = [_deployment(s, "blue", "0.1.0", 2, 2) for s in ("auth", "cards", "charges", "analytics")]
    deployments += [_deployment(s, "green", "0.3.0", 0, 0) for s in ("auth", "cards", "charges", "analytics")]
    text = statusview.render(INSTANCE, deployments)
    assert "Phase:      ↺ RolledBack  (ProgressDeadlineExceeded)" in text
    assert "Message:    0.3.0 was not ready within 20 s." in text
    assert "Release:    0.3.0 on green" in text and "RolledBack" in text
    assert (
        "├── cards\n│   ├── blue   0.1.0      2/2 ready  ● active\n│   └── green  0.3.0      0/0 ready  preview" in text
    )
    assert text.rstrip().endswith("└── green  0.3.0      0/0 ready  preview")


def test_a_new_instance_renders_without_status() -> None:
    text = statusview.render({"metadata": {"name": "p", "namespace": "n"}, "spec": {"version": "1"}}, [])
    assert "Phase:      ◌ Pending" in text and "└── analytics" in text


def test_the_command_reports_a_missing_instance_clearly(tmp_path: Path) -> None:
    ghostpay = Path(sys.executable).parent / "ghostpay"
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "none")}
    result = subprocess.run(
        [str(ghostpay), "status", "payments", "-n", "shop"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot show GhostPayInstance shop/payments" in result.stderr and "Traceback" not in result.stderr
