"""`helm install` of the chart on the local control plane (KWOK: pods never run, but the API server validates and
admits every object): a fresh cluster of its own, since other tests apply manifests/ and its cluster-scoped objects
(ClusterRole ghostpay-operator, the ClusterKopfPeering) would belong to no Helm release there. Helm installs the
CRDs itself here, then the demo's GhostPayInstance is accepted under them."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ghostpay_devtools import localcluster
from tests.helm import helm
from tests.helm.helm import CHART

pytestmark = pytest.mark.slow

DEMO = ("--set", "demo.enabled=true", "--set", "demo.vault.enabled=true")
NODE_PORTS = {"auth": 30080, "cards": 30081, "charges": 30082, "analytics": 30083}


@pytest.fixture(scope="module")
def fresh_cluster() -> Iterator[localcluster.Cluster]:
    directory = Path(tempfile.mkdtemp(prefix="gph-", dir="/tmp"))
    try:
        yield localcluster.up(directory)
    finally:
        localcluster.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


def _helm(cluster: localcluster.Cluster, *args: str) -> str:
    result = helm.run(*args, kubeconfig=cluster.kubeconfig, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _get(cluster: localcluster.Cluster, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return found


def _secret(cluster: localcluster.Cluster, namespace: str, name: str) -> dict[str, str]:
    data = _get(cluster, "secret", name, "-n", namespace)["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_install_demo_upgrade_keeps_secrets_uninstall_removes_operator(fresh_cluster: localcluster.Cluster) -> None:
    cluster, namespace = fresh_cluster, "gp-demo"
    installed = _helm(cluster, "install", "ghostpay", str(CHART), "-n", namespace, "--create-namespace", *DEMO)
    assert "NodePorts 30080, 30081, 30082 and 30083" in installed  # the chart's NOTES.txt

    # Every object the release rendered exists: the API server accepted each one.
    manifest = _helm(cluster, "get", "manifest", "ghostpay", "-n", namespace)
    created = json.loads(cluster.kubectl("get", "-f", "-", "-o", "json", input=manifest).stdout)["items"]
    assert {(o["kind"], o["metadata"]["name"]) for o in created} >= {
        ("Deployment", "ghostpay-operator"),
        ("ClusterRole", "ghostpay-operator"),
        ("ClusterRoleBinding", "ghostpay-operator"),
        ("ClusterKopfPeering", "ghostpay-operator"),
        ("GhostPayInstance", "payments"),
        ("Secret", "payments-admin"),
        ("Secret", "payments-db"),
        ("Deployment", "payments-postgres"),
        ("Deployment", "payments-redis"),
        ("Deployment", "payments-openbao"),
        ("ClusterRoleBinding", f"{namespace}-payments-openbao-tokenreview"),
    }
    for crd in ("ghostpayinstances.ghostpay.io", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):
        _get(cluster, "crd", crd)  # installed by Helm from the chart's crds/
    operator = _get(cluster, "deployment", "ghostpay-operator", "-n", namespace)
    assert operator["spec"]["replicas"] == 2

    instance = _get(cluster, "ghostpayinstance", "payments", "-n", namespace)
    assert {name: s["nodePort"] for name, s in instance["spec"]["services"].items()} == NODE_PORTS
    assert instance["spec"]["admin"] == {"secretRef": {"name": "payments-admin"}}
    assert instance["spec"]["keyRotation"]["vault"]["address"] == f"https://payments-openbao.{namespace}.svc:8200"
    admin = _secret(cluster, namespace, "payments-admin")
    assert sorted(admin) == ["client_id", "client_secret"] and len(admin["client_secret"]) >= 16
    database = _secret(cluster, namespace, "payments-db")
    root_token = _secret(cluster, namespace, "payments-openbao")
    certificate = _secret(cluster, namespace, "payments-openbao-tls")

    # An upgrade (with a changed value) keeps the admin's credentials and the database password: `lookup`.
    _helm(cluster, "upgrade", "ghostpay", str(CHART), "-n", namespace, *DEMO, "--set", "replicas=3")
    assert _get(cluster, "deployment", "ghostpay-operator", "-n", namespace)["spec"]["replicas"] == 3
    assert _secret(cluster, namespace, "payments-admin") == admin
    assert _secret(cluster, namespace, "payments-db") == database
    assert _secret(cluster, namespace, "payments-openbao") == root_token
    assert _secret(cluster, namespace, "payments-openbao-tls") == certificate

    _helm(cluster, "uninstall", "ghostpay", "-n", namespace, "--wait", "--timeout", "120s")
    for kind, name, extra in (
        ("deployment", "ghostpay-operator", ["-n", namespace]),
        ("clusterrole", "ghostpay-operator", []),
        ("clusterrolebinding", "ghostpay-operator", []),
        ("clusterrolebinding", f"{namespace}-payments-openbao-tokenreview", []),
    ):
        gone = cluster.kubectl("get", kind, name, *extra, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr, (kind, name)
    # Helm never deletes the CRDs it installed (deleting one would delete every instance in the cluster).
    _get(cluster, "crd", "ghostpayinstances.ghostpay.io")


def test_namespaced_install_grants_a_role_in_the_watched_namespace_only(fresh_cluster: localcluster.Cluster) -> None:
    cluster = fresh_cluster
    cluster.kubectl("create", "namespace", "watched")
    _helm(
        cluster,
        "install",
        "scoped",
        str(CHART),
        "-n",
        "gp-scoped",
        "--create-namespace",
        "--set",
        "watchNamespace=watched",
    )
    role = _get(cluster, "role", "ghostpay-operator", "-n", "watched")
    assert all(rule["apiGroups"] != ["apiextensions.k8s.io"] for rule in role["rules"])
    binding = _get(cluster, "rolebinding", "ghostpay-operator", "-n", "watched")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ghostpay-operator", "namespace": "gp-scoped"}]
    _get(cluster, "kopfpeering", "ghostpay-operator", "-n", "watched")
    command = _get(cluster, "deployment", "ghostpay-operator", "-n", "gp-scoped")["spec"]["template"]["spec"]
    assert command["containers"][0]["command"] == ["ghostpay", "operator", "--namespace", "watched"]
    for kind in ("clusterrole", "clusterrolebinding"):
        assert cluster.kubectl("get", kind, "ghostpay-operator", check=False).returncode != 0, kind
    _helm(cluster, "uninstall", "scoped", "-n", "gp-scoped")


@pytest.mark.parametrize(("node_port", "accepted"), [(30080, True), (32767, True), (29999, False), (80, False)])
def test_the_crd_takes_node_ports_in_the_node_port_range_only(
    fresh_cluster: localcluster.Cluster, node_port: int, accepted: bool
) -> None:
    """The API server's own check (dry run): spec.services.<name>.nodePort is 30000-32767."""
    cluster = fresh_cluster
    cluster.kubectl("apply", "--server-side", "-f", str(helm.ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/ghostpayinstances.ghostpay.io", "--timeout=60s")
    cluster.kubectl("create", "namespace", "ports", check=False)
    instance = {
        "apiVersion": "ghostpay.io/v1alpha1",
        "kind": "GhostPayInstance",
        "metadata": {"name": "payments", "namespace": "ports"},
        "spec": {
            "image": "ghostpay/ghostpay",
            "version": helm.VERSION,
            "services": {"auth": {"nodePort": node_port}},
            "database": {"secretRef": {"name": "payments-db"}},
            "redis": {"url": "redis://redis:6379/0"},
            "admin": {"secretRef": {"name": "payments-admin"}},
        },
    }
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(instance), check=False)
    assert (result.returncode == 0) == accepted, result.stderr
    if not accepted:
        assert "spec.services.auth.nodePort" in result.stderr
