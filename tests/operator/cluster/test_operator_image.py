"""The operator from the container image (issue 11): `ghostpay operator` in a container run as its Deployment
(manifests/base/deployment.yaml) runs its pod — read-only root filesystem, writable only where the Deployment
mounts an emptyDir, its runAsUser, no capabilities — drives a GhostPayInstance on the local control plane to
Healthy. The container shares the host's network namespace and reaches only the API server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from ghostpay_devtools import localcluster
from tests.image import docker
from tests.operator.support.kube_helpers import (
    REPO,
    SETTLE,
    create_database_secret,
    healthy_instance,
    install_crds,
    instance_yaml,
    wait_for,
)
from tests.support import procs

pytestmark = [pytest.mark.slow, pytest.mark.image]
READY_TIMEOUT = 90.0


def pod_options() -> list[str]:
    """`docker run` options for what the operator's Deployment gives its pod: the user, a read-only root with a
    tmpfs wherever an emptyDir is mounted, no capabilities, no privilege escalation."""
    pod = yaml.safe_load((REPO / "manifests/base/deployment.yaml").read_text())["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"]
    empty_dirs = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
    writable = [mount["mountPath"] for mount in container.get("volumeMounts", []) if mount["name"] in empty_dirs]
    user = f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
    options = ["--user", user, "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    return [*options, *(option for path in writable for option in ("--tmpfs", path))]


@contextlib.contextmanager
def operator_container(cluster: localcluster.Cluster, namespace: str, tmp_path: Path) -> Iterator[str]:
    """`ghostpay operator --namespace NAMESPACE` from the image, detached; yields the container's name once its
    /healthz answers 200 (bounded); removed on exit, its logs printed."""
    image = docker.build()
    # One self-contained file (certificates inline), readable by uid 10001, mounted alone.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(cluster.kubectl("config", "view", "--raw", "--flatten").stdout)
    kubeconfig.chmod(0o644)
    name, port = f"ghostpay-image-operator-{secrets.token_hex(4)}", procs.free_port()
    env = {
        "KUBECONFIG": "/etc/ghostpay/kubeconfig",
        "GHOSTPAY_HOST": "127.0.0.1",
        "GHOSTPAY_PORT": str(port),
        "GHOSTPAY_METRICS_PORT": str(procs.free_port()),  # host network: the default 9090 may be taken
        "GHOSTPAY_OPERATOR_RESYNC_SECONDS": "5",
        "GHOSTPAY_OPERATOR_PEERING_LIFETIME": "10",
    }
    command = [
        "docker", "run", "-d", "--name", name, "--network", "host", *pod_options(),
        "-v", f"{kubeconfig}:/etc/ghostpay/kubeconfig:ro",
        *(option for key, value in env.items() for option in ("-e", f"{key}={value}")),
        image, "ghostpay", "operator", "--namespace", namespace,
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, text=True, check=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0).status_code == 200:
                    break
            assert time.monotonic() < deadline and running(name), "the operator's /healthz never answered 200"
            time.sleep(0.5)
        yield name
    finally:
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)
        print(f"--- operator container logs (tail)\n{logs.stderr[-4000:]}{logs.stdout[-2000:]}")
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def running(name: str) -> bool:
    state = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Running}}", name], capture_output=True, text=True, check=False
    )
    return state.stdout.strip() == "true"


def test_the_operator_from_the_image_makes_an_instance_healthy(
    cluster: localcluster.Cluster, namespace: str, tmp_path: Path
) -> None:
    install_crds(cluster)
    create_database_secret(cluster, namespace)
    with operator_container(cluster, namespace, tmp_path) as name:
        started = time.monotonic()
        cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace))
        instance = wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
        print(f"\nHealthy in {time.monotonic() - started:.1f} s under the operator from the image")
        assert running(name)
    assert instance["status"]["readyReplicas"] == 8
