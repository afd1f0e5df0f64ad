"""The local control plane behaves like the cluster the operator will meet: zoned nodes, Deployments
scheduled and spread, pods Running and Ready through KWOK (except the simulated unready ones), and
Services with EndpointSlices. Every wait is bounded."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ghostpay_devtools import localcluster

pytestmark = pytest.mark.slow

WAIT = 120  # seconds, for anything the scheduler and KWOK must do
ZONE = "topology.kubernetes.io/zone"


def get_json(cluster: localcluster.Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "--output=json").stdout)


def apply(cluster: localcluster.Cluster, namespace: str, *documents: dict[str, Any]) -> None:
    cluster.kubectl("apply", f"--namespace={namespace}", "-f", "-", input=yaml.safe_dump_all(documents))


def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def pod(name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
        "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/ghostpay:test"}]},
    }


def deployment(name: str, replicas: int, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    template = pod(name, {**labels, **(extra_labels or {})})
    del template["apiVersion"], template["kind"], template["metadata"]["name"]
    template["spec"]["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": ZONE,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": labels},
        }
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
    }


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": 8000}]},
    }


def condition(obj: dict[str, Any], kind: str) -> str | None:
    for item in obj.get("status", {}).get("conditions", []):
        if item["type"] == kind:
            return str(item["status"])
    return None


def node_zones(cluster: localcluster.Cluster) -> dict[str, str]:
    return {
        node["metadata"]["name"]: node["metadata"]["labels"].get(ZONE, "")
        for node in get_json(cluster, "nodes")["items"]
    }


def test_nodes_are_ready_in_both_zones(cluster: localcluster.Cluster) -> None:
    nodes = get_json(cluster, "nodes")["items"]
    assert len(nodes) >= 3
    assert {node["metadata"]["labels"][ZONE] for node in nodes} == {"zone-a", "zone-b"}
    for node in nodes:
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == node["metadata"]["name"]
        assert condition(node, "Ready") == "True"
        assert int(node["status"]["allocatable"]["pods"]) > 0


def test_kubeconfig_points_at_loopback(cluster: localcluster.Cluster) -> None:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    servers = {entry["cluster"]["server"] for entry in config["clusters"]}
    assert servers and all(server.startswith("https://127.0.0.1:") for server in servers)


def test_deployment_pods_run_ready_and_spread_over_both_zones(cluster: localcluster.Cluster, namespace: str) -> None:
    apply(cluster, namespace, deployment("web", 4))
    cluster.kubectl(
        "rollout", "status", "deployment/web", f"--namespace={namespace}", f"--timeout={WAIT}s", timeout=WAIT + 10
    )

    pods = get_json(cluster, "pods", f"--namespace={namespace}", "--selector=app=web")["items"]
    assert len(pods) == 4
    assert all(p["status"]["phase"] == "Running" and condition(p, "Ready") == "True" for p in pods)
    zones = node_zones(cluster)
    assert Counter(zones[p["spec"]["nodeName"]] for p in pods) == {"zone-a": 2, "zone-b": 2}


def test_pod_annotated_unready_runs_but_never_becomes_ready(cluster: localcluster.Cluster, namespace: str) -> None:
    apply(cluster, namespace, pod("broken", {"app": "broken"}, {localcluster.SIMULATE_ANNOTATION: "unready"}))
    cluster.kubectl(
        "wait",
        "pod/broken",
        f"--namespace={namespace}",
        "--for=jsonpath={.status.phase}=Running",
        f"--timeout={WAIT}s",
        timeout=WAIT + 10,
    )

    not_ready = cluster.kubectl(
        "wait",
        "pod/broken",
        f"--namespace={namespace}",
        "--for=condition=Ready",
        "--timeout=5s",
        timeout=30,
        check=False,
    )
    assert not_ready.returncode != 0
    broken = get_json(cluster, "pod/broken", f"--namespace={namespace}")
    assert broken["status"]["phase"] == "Running"
    assert condition(broken, "Ready") == "False"
    assert condition(broken, "PodScheduled") == "True"
    assert all(
        status["state"].get("running") and not status["ready"] for status in broken["status"]["containerStatuses"]
    )


def test_service_endpoint_slices_list_ready_pods_as_ready(cluster: localcluster.Cluster, namespace: str) -> None:
    # The bare pod shares the Service's label but not the Deployment's selector (its ReplicaSet would adopt it).
    apply(
        cluster,
        namespace,
        deployment("api", 2, {"tier": "api"}),
        service("api", {"tier": "api"}),
        pod("api-broken", {"tier": "api"}, {localcluster.SIMULATE_ANNOTATION: "unready"}),
    )
    cluster.kubectl(
        "rollout", "status", "deployment/api", f"--namespace={namespace}", f"--timeout={WAIT}s", timeout=WAIT + 10
    )

    def endpoints() -> dict[str, bool]:
        slices = get_json(
            cluster, "endpointslices", f"--namespace={namespace}", "--selector=kubernetes.io/service-name=api"
        )["items"]
        return {
            endpoint["targetRef"]["name"]: bool(endpoint["conditions"].get("ready"))
            for item in slices
            for endpoint in item.get("endpoints") or []
        }

    eventually(
        lambda: len(endpoints()) == 3 and sum(endpoints().values()) == 2,
        "two ready endpoints and one not ready in the Service's EndpointSlices",
    )
    listed = endpoints()
    assert listed["api-broken"] is False
    ready = {name for name, is_ready in listed.items() if is_ready}
    pods = get_json(cluster, "pods", f"--namespace={namespace}", "--selector=tier=api")["items"]
    assert ready == {p["metadata"]["name"] for p in pods if condition(p, "Ready") == "True"}


def component_pids(directory: Path) -> set[int]:
    return {int(path.read_text()) for path in (directory / "kwok/clusters/ghostpay/pids").glob("*.pid")}


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_up_reuses_a_running_cluster_and_down_leaves_no_process() -> None:
    directory = Path(tempfile.mkdtemp(prefix="gpk-", dir="/tmp"))
    try:
        first = localcluster.up(directory, nodes=3)
        pids = component_pids(directory)
        assert len(pids) == len(localcluster.COMPONENTS) and all(alive(pid) for pid in pids)
        again = localcluster.up(directory, nodes=3)
        assert again.kubeconfig == first.kubeconfig
        assert component_pids(directory) == pids  # the same processes: reused, not restarted
        assert len(get_json(again, "nodes")["items"]) == 3
    finally:
        localcluster.down(directory)
    assert not any(alive(pid) for pid in pids)
    assert not directory.exists()


def test_down_waits_until_even_a_process_that_ignores_sigterm_is_gone(tmp_path: Path) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    ours = subprocess.Popen([sys.executable, "-c", stubborn, str(tmp_path / "workdir")])
    other = subprocess.Popen([sys.executable, "-c", stubborn, "/somewhere/else"])
    try:
        time.sleep(0.5)  # both have set their handler
        processes = localcluster._our_processes([ours.pid, other.pid], tmp_path / "workdir")
        assert list(processes) == [ours.pid]
        localcluster._reap(processes, time.monotonic() + 0.5)
        assert not alive(ours.pid)  # SIGKILLed and gone when _reap returned, not merely signalled
        assert alive(other.pid)  # not the cluster's: untouched
    finally:
        for process in (ours, other):
            process.kill()
            process.wait()


def test_an_api_server_that_never_answers_fails_with_its_logs(tmp_path: Path) -> None:
    logs = localcluster._cluster_workdir(tmp_path) / "logs"
    logs.mkdir(parents=True)
    (logs / "etcd.log").write_text("".join(f"etcd line {n}\n" for n in range(100)))
    never_ready = tmp_path / "kubectl"
    never_ready.write_text("#!/bin/sh\necho 'connection refused' >&2\nexit 1\n")
    never_ready.chmod(0o755)
    cluster = localcluster.Cluster(tmp_path, {"kubectl": never_ready})

    with pytest.raises(localcluster.ClusterError) as error:
        localcluster._wait_api(cluster, time.monotonic() + 1)

    message = str(error.value)
    assert "timed out waiting for the API server" in message
    assert "kubectl's last answer: connection refused" in message
    assert "etcd line 99" in message and "etcd line 79" not in message  # its last 20 lines
    assert "kube-apiserver.log ---\n(unreadable" in message
