"""The operator under failure: killed mid-reconcile and restarted, and two replicas with kopf peering, which must
not fight (one writes, the other waits) and must hand over when the active one dies. And under its shipped RBAC:
each install (manifests/ cluster-wide, manifests/namespaced/) is enough to run it, and the namespaced one grants
nothing outside its namespace."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ghostpay_devtools import localcluster
from tests.operator.support.kube_helpers import (
    NEVER,
    OWNED_RESOURCES,
    REPO,
    SETTLE,
    create_database_secret,
    get_json,
    healthy_instance,
    install_crds,
    instance_yaml,
    live_deployments,
    operator_process,
    scale_cards,
    wait_for,
    writes_while_idle,
)
from tests.support import procs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crds(cluster: localcluster.Cluster) -> localcluster.Cluster:
    return install_crds(cluster)


def test_killed_mid_reconcile_it_resumes_from_the_cluster(
    crds: localcluster.Cluster, namespace: str, tmp_path: Path
) -> None:
    create_database_secret(crds, namespace)
    first = operator_process(crds, tmp_path).start()
    try:
        crds.kubectl("apply", "-f", "-", input=instance_yaml(namespace))
        # Kill it as soon as it has started writing children, before the instance is healthy.
        wait_for(lambda: get_json(crds, "jobs", "-n", namespace)["items"], 60, "the migration Job", interval=0.2)
        first.kill()
    finally:
        first.stop()
    assert healthy_instance(crds, namespace) is None
    second = operator_process(crds, tmp_path).start()
    try:
        instance = wait_for(lambda: healthy_instance(crds, namespace), SETTLE, "a Healthy instance after the restart")
    finally:
        second.stop()
    assert instance["status"]["readyReplicas"] == 8
    assert len(get_json(crds, "jobs", "-n", namespace)["items"]) == 1  # the migration was not started twice


@pytest.fixture
def two_operators(crds: localcluster.Cluster, tmp_path: Path) -> Iterator[tuple[procs.Proc, procs.Proc]]:
    crds.kubectl("apply", "-f", str(REPO / "manifests" / "peering.yaml"))
    active = operator_process(crds, tmp_path, GHOSTPAY_OPERATOR_PRIORITY="200")
    standby = operator_process(crds, tmp_path, GHOSTPAY_OPERATOR_PRIORITY="100")
    try:
        with procs.running(active, standby):
            yield active, standby
    finally:
        crds.kubectl("delete", "-f", str(REPO / "manifests" / "peering.yaml"), check=False)


def _applied(proc: procs.Proc) -> int:
    return proc.logs().count("applying ")


def test_two_replicas_do_not_fight_and_hand_over(
    two_operators: tuple[procs.Proc, procs.Proc], cluster: localcluster.Cluster, namespace: str
) -> None:
    active, standby = two_operators
    create_database_secret(cluster, namespace)
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace))
    wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
    assert _applied(active) > 0 and _applied(standby) == 0

    assert writes_while_idle(cluster, OWNED_RESOURCES, 12) == {}  # two resync periods of each replica

    # The active replica dies in the middle of a change; the standby takes over after the peering lifetime.
    scale_cards(cluster, namespace, 3)
    active.kill()
    scaled = wait_for(
        lambda: (i := healthy_instance(cluster, namespace)) and i["status"]["replicas"] == 9 and i,
        SETTLE,
        "the standby to finish the change",
    )
    assert scaled["status"]["readyReplicas"] == 9
    assert live_deployments(cluster, namespace)["payments-cards-blue"]["spec"]["replicas"] == 3
    assert _applied(standby) > 0


def _service_account_kubeconfig(cluster: localcluster.Cluster, path: Path) -> Path:
    """A kubeconfig that authenticates as the operator's own ServiceAccount (from manifests/)."""
    token = cluster.kubectl("create", "token", "ghostpay-operator", "-n", "ghostpay-system", "--duration=1h")
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": token.stdout.strip()}
    path.write_text(yaml.safe_dump(config))
    return path


OPERATOR_SA = "system:serviceaccount:ghostpay-system:ghostpay-operator"
MONITORING_CRDS = REPO / "tests" / "operator" / "support" / "prometheus_operator_crds.yaml"


def _install(cluster: localcluster.Cluster, install: str, namespace: str, tmp_path: Path) -> str | None:
    """Apply the operator's shipped install; the namespace `ghostpay operator` must watch (None: all of them).

    `namespaced` is manifests/namespaced/ with its one documented edit, the watched namespace, set to `namespace`;
    the cluster-wide install's ClusterRoleBinding (other tests apply it) is deleted first, or the operator's
    identity would keep its cluster-wide rights."""
    if install == "cluster-wide":
        cluster.kubectl("apply", "-k", str(REPO / "manifests"))
        return None
    cluster.kubectl("delete", "clusterrolebinding", "ghostpay-operator", "--ignore-not-found")
    copy = shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    watched = copy / "namespaced" / "watched" / "kustomization.yaml"
    watched.write_text(watched.read_text().replace("namespace: shop", f"namespace: {namespace}"))
    cluster.kubectl("apply", "-k", str(copy / "namespaced"))
    assert not _can(cluster, "list", "customresourcedefinitions")  # no cluster-wide grant is left
    deployment = get_json(cluster, "deployment", "ghostpay-operator", "-n", "ghostpay-system")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"][-2:] == ["--namespace", namespace]
    return namespace


@pytest.mark.parametrize("install", ["cluster-wide", "namespaced"])
def test_it_needs_no_more_than_its_own_role(
    crds: localcluster.Cluster, namespace: str, tmp_path: Path, install: str
) -> None:
    """The operator, authenticated as its ServiceAccount under the RBAC of each shipped install (manifests/ or
    manifests/namespaced/), brings an instance to Healthy and manages its key rotation with no request refused;
    with the Prometheus Operator's CRDs installed, it makes the ServiceMonitor and PrometheusRule too."""
    watched = _install(crds, install, namespace, tmp_path)
    crds.kubectl("apply", "--server-side", "-f", str(MONITORING_CRDS))
    crds.kubectl("wait", "--for=condition=Established", "crd/prometheusrules.monitoring.coreos.com", "--timeout=60s")
    kubeconfig = _service_account_kubeconfig(crds, tmp_path / "operator.kubeconfig")
    create_database_secret(crds, namespace)
    # Key rotation too: the operator creates a Role and its binding, then deletes the CronJob.
    crds.kubectl("apply", "-f", "-", input=instance_yaml(namespace, keyRotation={"schedule": NEVER}))
    operator = operator_process(crds, tmp_path, watched, KUBECONFIG=str(kubeconfig)).start()
    try:
        instance = wait_for(
            lambda: healthy_instance(crds, namespace), SETTLE, "a Healthy instance under the operator's role"
        )
        assert get_json(crds, "rolebinding", "payments-key-rotation", "-n", namespace)
        for kind in ("servicemonitor", "prometheusrule"):
            wait_for(lambda k=kind: get_json(crds, k, "payments", "-n", namespace), 30, f"the {kind} under its role")
        remove = json.dumps([{"op": "remove", "path": "/spec/keyRotation"}])
        crds.kubectl("patch", "ghostpay", "payments", "-n", namespace, "--type=json", "-p", remove)
        wait_for(
            lambda: get_json(crds, "cronjob", "payments-key-rotation", "-n", namespace) is None,
            60,
            "the CronJob to be deleted under the operator's role",
        )
    finally:
        operator.stop()
        crds.kubectl("delete", "-f", str(REPO / "manifests" / "peering.yaml"), check=False)
        crds.kubectl("delete", "-f", str(MONITORING_CRDS), "--ignore-not-found", check=False)
    assert instance["status"]["readyReplicas"] == 8
    logs = operator.logs()
    assert _refused_by_rbac(logs) == [] and "Not enough permissions" not in logs


def _can(cluster: localcluster.Cluster, *request: str) -> bool:
    """`kubectl auth can-i` for the operator's ServiceAccount: the API server's own authorizer answers."""
    answer = cluster.kubectl("auth", "can-i", *request, f"--as={OPERATOR_SA}", check=False).stdout.strip()
    assert answer in ("yes", "no"), answer
    return answer == "yes"


def test_finding_6_the_namespaced_install_grants_nothing_outside_its_namespace(
    crds: localcluster.Cluster, namespace: str, tmp_path: Path
) -> None:
    """Finding 6 of the security review: under manifests/namespaced/ a compromised operator can do what it does in
    its own namespace and nothing anywhere else — no Deployment, Secret, Role or RoleBinding in another namespace,
    no cluster-scoped write, no Secret listing even at home."""
    _install(crds, "namespaced", namespace, tmp_path)
    other = "kube-system"
    for verb, resource in (("create", "deployments"), ("get", "secrets"), ("patch", "secrets"), ("create", "roles")):
        assert _can(crds, verb, resource, "-n", namespace), f"{verb} {resource} at home"
        assert not _can(crds, verb, resource, "-n", other), f"{verb} {resource} in {other}"
    for request in (
        ("create", "rolebindings", "-n", other),
        ("create", "jobs", "-n", other),
        ("get", "ghostpayinstances", "-n", other),
        ("list", "secrets", "-n", namespace),
        ("list", "secrets", "--all-namespaces"),
        ("create", "clusterroles"),
        ("create", "clusterrolebindings"),
        ("patch", "customresourcedefinitions"),
        ("list", "namespaces"),
    ):
        assert not _can(crds, *request), " ".join(request)


def test_watching_one_namespace_it_needs_no_more_than_its_own_role(
    crds: localcluster.Cluster, namespace: str, tmp_path: Path
) -> None:
    """`ghostpay operator --namespace NS` under the same role: no cluster-wide listing it may not do, and a prompt
    stop on SIGTERM."""
    crds.kubectl("apply", "-k", str(REPO / "manifests"))
    kubeconfig = _service_account_kubeconfig(crds, tmp_path / "operator.kubeconfig")
    create_database_secret(crds, namespace)
    crds.kubectl("apply", "-f", "-", input=instance_yaml(namespace))
    operator = operator_process(crds, tmp_path, namespace, KUBECONFIG=str(kubeconfig)).start()
    try:
        instance = wait_for(
            lambda: healthy_instance(crds, namespace), SETTLE, "a Healthy instance in the one namespace"
        )
    finally:
        exit_code = operator.stop(timeout=15)
    assert instance["status"]["readyReplicas"] == 8
    assert exit_code == 0  # stopped by SIGTERM, not killed after the timeout
    logs = operator.logs()
    assert _refused_by_rbac(logs) == [] and "Not enough permissions" not in logs


_GOING = re.compile(r"namespace (?P<namespace>\S+) is being deleted: stopped reconciling")


def _refused_by_rbac(logs: str) -> list[str]:
    """Log lines of requests the API server refused (403), except for creating in namespaces being deleted: the
    operator watches the whole cluster, other tests' namespaces go away meanwhile, and creating in those is refused
    to anyone (the API server says so; for its own requests the operator logs that it stopped)."""
    going = {match["namespace"] for match in _GOING.finditer(logs)}
    return [
        line
        for line in logs.splitlines()
        if ("HTTP/1.1 403" in line or "forbidden" in line.lower())
        and "because it is being terminated" not in line
        and not any(f"/namespaces/{namespace}/" in line for namespace in going)
    ]
