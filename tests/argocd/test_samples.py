"""The ArgoCD Applications in samples/argocd/: the Helm chart first (sync wave -1), then an instance (wave 1), each
pointing at what exists in this repository, and the instance's ignoreDifferences the same as
argocd/ignore-differences.yaml (the one the argocd-cm snippet carries)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.argocd.lua import ROOT

SAMPLES = ROOT / "samples/argocd"


def _applications() -> dict[str, dict[str, Any]]:
    apps = [yaml.safe_load(path.read_text()) for path in sorted(SAMPLES.glob("*.yaml"))]
    assert all(app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application" for app in apps)
    return {app["metadata"]["name"]: app for app in apps}


def _wave(app: dict[str, Any]) -> int:
    return int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


def test_the_chart_is_synced_before_the_instance() -> None:
    apps = _applications()
    assert set(apps) == {"ghostpay-operator", "ghostpay"}
    assert _wave(apps["ghostpay-operator"]) < _wave(apps["ghostpay"])


def test_the_applications_point_at_the_chart_and_an_instance_of_this_repository() -> None:
    apps = _applications()
    chart = apps["ghostpay-operator"]["spec"]["source"]["path"]
    assert (ROOT / chart / "Chart.yaml").is_file() and (ROOT / chart / "crds").is_dir()
    source = apps["ghostpay"]["spec"]["source"]
    included = source["directory"]["include"].strip("{}").split(",")
    documents = [yaml.safe_load((ROOT / source["path"] / name).read_text()) for name in included]
    assert "GhostPayInstance" in [doc["kind"] for doc in documents]


def test_the_instance_ignores_the_differences_the_snippet_does() -> None:
    spec = _applications()["ghostpay"]["spec"]
    [entry] = spec["ignoreDifferences"]
    expected = yaml.safe_load((ROOT / "argocd/ignore-differences.yaml").read_text())
    assert entry == {"group": "ghostpay.io", "kind": "GhostPayInstance", **expected}
    assert "RespectIgnoreDifferences=true" in spec["syncPolicy"]["syncOptions"]
