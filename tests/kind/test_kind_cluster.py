"""`ghostpay cluster up --kind` makes a real cluster (contract §4): nodes in two zones, DNS, Service routing
from a pod, a zone-spread Deployment turning Ready through its real probe, its NodePort answering on 127.0.0.1,
and a second `up` reusing the cluster. (`down` is checked by the session fixture's teardown.)"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from ghostpay_devtools import kindcluster

from .conftest import KindTestCluster, cluster_up

pytestmark = pytest.mark.slow

NODE_PORT = 30080
REQUESTS = 20
_ATTEMPTS = 120  # bounded: kube-proxy may need a moment after the endpoints turn ready


@pytest.fixture(scope="module")
def namespace(kind_cluster: KindTestCluster) -> Iterator[str]:
    name = f"kind-{secrets.token_hex(4)}"
    kind_cluster.kubectl("create", "namespace", name)
    yield name
    kind_cluster.kubectl("delete", "namespace", name, "--wait=false")


def _deployment(image: str) -> str:
    labels = {"app": "echo"}
    container = {
        "name": "echo",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/server", "serve", ":8080"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1},
    }
    spread = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": labels},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "echo"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], "topologySpreadConstraints": [spread]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo"},
        "spec": {
            "type": "NodePort",
            "selector": labels,
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": NODE_PORT}],
        },
    }
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment, service]})


@pytest.fixture(scope="module")
def echo(kind_cluster: KindTestCluster, namespace: str, http_image: str) -> str:
    """The two-replica Deployment and its NodePort Service, rolled out (both pods Ready through /ready)."""
    kind_cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_deployment(http_image))
    kind_cluster.kubectl("rollout", "status", "-n", namespace, "deployment/echo", "--timeout=300s", timeout=330)
    return namespace


def test_nodes_are_ready_in_two_zones(kind_cluster: KindTestCluster) -> None:
    nodes = json.loads(kind_cluster.kubectl("get", "nodes", "-o", "json"))["items"]
    control_planes = [n for n in nodes if "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"]]
    workers = [n for n in nodes if n not in control_planes]
    assert len(control_planes) == 1
    assert len(workers) >= 2
    for node in nodes:
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", node["metadata"]["name"]
    zones = {n["metadata"]["labels"].get("topology.kubernetes.io/zone") for n in workers}
    assert zones == {"zone-a", "zone-b"}
    assert kind_cluster.kubeconfig.exists()


def test_spread_deployment_is_ready_in_both_zones_and_answers_on_its_node_port(
    kind_cluster: KindTestCluster, echo: str
) -> None:
    pods = json.loads(kind_cluster.kubectl("get", "pods", "-n", echo, "-l", "app=echo", "-o", "json"))["items"]
    assert len(pods) == 2
    for pod in pods:
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
    zones = {
        json.loads(kind_cluster.kubectl("get", "node", pod["spec"]["nodeName"], "-o", "json"))["metadata"]["labels"][
            "topology.kubernetes.io/zone"
        ]
        for pod in pods
    }
    assert zones == {"zone-a", "zone-b"}

    answers: list[str] = []
    # A new connection per request, so that kube-proxy picks a replica for each.
    with httpx.Client(timeout=5.0, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for _ in range(_ATTEMPTS):
            try:
                response = client.get(f"http://127.0.0.1:{NODE_PORT}/")
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            assert response.status_code == 200
            answers.append(response.text.strip())
            if len(answers) >= REQUESTS and len(set(answers)) == len(pods):
                break
            if len(answers) >= REQUESTS:
                time.sleep(0.5)  # kube-proxy on a busy node may not have programmed the second endpoint yet
    assert len(answers) >= REQUESTS, f"only {len(answers)} of {REQUESTS} answers in {_ATTEMPTS} attempts"
    # Both replicas served (each request has even odds; all twenty on one replica is a 1 in 500,000 event).
    assert set(answers) == {pod["metadata"]["name"] for pod in pods}
    print(f"\n{REQUESTS} answers on 127.0.0.1:{NODE_PORT}, from pods {sorted(set(answers))}", file=sys.stderr)


def test_a_pod_resolves_a_service_name_through_coredns(
    kind_cluster: KindTestCluster, echo: str, http_image: str
) -> None:
    cluster_ip = kind_cluster.kubectl("get", "service", "echo", "-n", echo, "-o", "jsonpath={.spec.clusterIP}")
    name = f"resolve-{secrets.token_hex(3)}"
    # The short name, as the demo's services name PostgreSQL and Redis: the pod's search path completes it.
    kind_cluster.kubectl(
        "run", name, "-n", echo, f"--image={http_image}", "--restart=Never", "--command", "--",
        "/server", "resolve", "echo",
    )  # fmt: skip
    kind_cluster.kubectl(
        "wait", "-n", echo, f"pod/{name}", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s", timeout=150
    )
    assert kind_cluster.kubectl("logs", "-n", echo, name).split() == [cluster_ip]


def test_a_second_cluster_up_reuses_the_running_cluster(kind_cluster: KindTestCluster) -> None:
    before = _container_ids()
    seconds = cluster_up(kind_cluster.dir)
    assert _container_ids() == before
    assert kind_cluster.kubeconfig.exists()
    first = kind_cluster.up_seconds
    print(f"\nsecond ghostpay cluster up --kind: {seconds:.1f} s (first: {first:.1f} s)", file=sys.stderr)


def _container_ids() -> list[str]:
    nodes = kindcluster.node_containers()
    result = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", *nodes], capture_output=True, text=True, check=True)
    return result.stdout.split()
