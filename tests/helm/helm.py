"""Helm for the chart's tests: the binary built from its Go module by tools/helm/build.sh (cached, under a second
when built), and helpers that run it on manifests/helm/ghostpay and read what it renders."""

from __future__ import annotations

import functools
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "manifests/helm/ghostpay"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
BUILD_TIMEOUT = 1800  # a cold build compiles Helm and the Kubernetes client: minutes on a busy machine

Manifest = dict[str, Any]


@functools.cache
def binary() -> Path:
    """The helm binary (built or found cached once per session); its build's progress is printed."""
    result = subprocess.run(
        ["bash", str(ROOT / "tools/helm/build.sh")], capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    print(result.stderr)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    name, _, path = line.partition("=")
    assert name == "helm"
    return Path(path)


def run(*args: str, kubeconfig: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """helm ARGS..., output captured; a kubeconfig for commands that talk to a cluster."""
    config = [f"--kubeconfig={kubeconfig}"] if kubeconfig else []
    return subprocess.run([str(binary()), *config, *args], capture_output=True, text=True, timeout=timeout, check=False)


def template(*values: str, namespace: str = "ghostpay-system", include_crds: bool = False) -> list[Manifest]:
    """The chart rendered by `helm template` with `--set` VALUES: its objects (CRDs only if asked)."""
    sets = [arg for value in values for arg in ("--set", value)]
    crds = ["--include-crds"] if include_crds else []
    result = run("template", "ghostpay", str(CHART), "-n", namespace, *crds, *sets)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(manifests: list[Manifest]) -> dict[tuple[str, str], Manifest]:
    """Objects keyed by (kind, name)."""
    keyed = {(m["kind"], m["metadata"]["name"]): m for m in manifests}
    assert len(keyed) == len(manifests), "two objects of one kind share a name"
    return keyed
