"""The `ghostpay-operator` scrape job example (monitoring/prometheus/scrape-operator.yaml): `promtool check config`
accepts it (with GhostPay's rules; its Kubernetes discovery swapped for a static target, which Debian's build
lacks), its job has the name the alerts read, and it finds the operator's pods by the labels and the named port
manifests/ gives them. tests/operator/cluster/test_scrape_wiring.py has a real Prometheus scrape the operator with
this job."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.operator.support.prometheus import prometheus_binary

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "monitoring" / "prometheus" / "scrape-operator.yaml"


def as_static(config: dict[str, Any], target: str) -> dict[str, Any]:
    """The example with its Kubernetes discovery replaced by one static target: Debian's prometheus and promtool
    are built without Kubernetes service discovery, so they refuse `kubernetes_sd_configs`."""
    (job,) = config["scrape_configs"]
    static = {key: value for key, value in job.items() if key != "kubernetes_sd_configs"}
    return {**config, "scrape_configs": [{**static, "static_configs": [{"targets": [target]}]}]}


def test_promtool_accepts_the_operator_scrape_example(tmp_path: Path) -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    (discovery,) = config["scrape_configs"][0]["kubernetes_sd_configs"]
    assert discovery == {"role": "pod", "namespaces": {"names": ["ghostpay-system"]}}
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(as_static(config, "127.0.0.1:9090")))
    shutil.copy(EXAMPLE.parent / "rules.yaml", tmp_path / "rules.yaml")
    result = subprocess.run(
        [prometheus_binary("promtool"), "check", "config", str(checked)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_job_keeps_the_operators_pods_on_their_metrics_port() -> None:
    (job,) = yaml.safe_load(EXAMPLE.read_text())["scrape_configs"]
    assert job["job_name"] == "ghostpay-operator"
    kept = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    deployment = yaml.safe_load((REPO / "manifests" / "base" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]
    label = pod["metadata"]["labels"]["app.kubernetes.io/name"]
    assert kept[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)] == label
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert kept[("__meta_kubernetes_pod_container_port_name",)] == "metrics" and ports["metrics"] == 9090
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
    assert "--metrics-port" not in pod["spec"]["containers"][0]["command"]  # 9090 is the default it relies on
