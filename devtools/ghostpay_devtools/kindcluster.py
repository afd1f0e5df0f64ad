"""A real Kubernetes cluster in Docker containers: `ghostpay cluster up --kind` and `ghostpay cluster down --kind`.

kind (built once from its Go module by `tools/kind/binaries.sh`) runs the cluster `ghostpay`: one control-plane
node and two workers in each of the zones `zone-a` and `zone-b` (label `topology.kubernetes.io/zone`; two per
zone so that a drained worker's pods have somewhere to go in their own zone), with host ports
127.0.0.1:30080-30083 mapped to the same NodePorts on the control-plane node (kube-proxy routes them to the pods,
wherever they run). `up` installs and starts Docker Engine if needed (`tools/docker/ensure.sh`); `down` removes
the node containers with Docker alone, building nothing.

Node image, first match wins:
    1. $GHOSTPAY_KIND_NODE_IMAGE (an image made by node-image.sh is known by its label and treated as in 3);
    2. kind's official `kindest/node:<Kubernetes version>` if Docker has it or pulls it within PULL_TIMEOUT
       (a machine with internet; the cluster is then kind's stock one, with its own CNI, kindnet); with
       GHOSTPAY_KIND_PULL=0 (the tests: no traffic leaves the machine) it is not pulled;
    3. otherwise the image made here by `tools/kind/node-image.sh` (cached by version). It has no CNI of its
       own (`disableDefaultCNI`): `kindnetwork` lays a bridge on each node, and kubeadm gets the settings this
       machine needs (cgroupfs, cgroup v1, positive eviction thresholds, no conntrack sizing, etcd's image tag).

The image `ghostpay/ghostpay:<package version>` (`make image`) is loaded into the nodes when Docker has it.
GHOSTPAY_KIND_CLUSTER and GHOSTPAY_KIND_NODE_PORT_BASE (default `ghostpay` and 30080) name a second cluster with
NodePorts of its own, for a test session while another one holds the machine's cluster.
Layout of the directory (default `./.ghostpay/kind`): `kubeconfig` (the cluster's, for the host) and
`kind.yaml` (the configuration handed to `kind create cluster`).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ghostpay_devtools import kindnetwork

DEFAULT_DIR = Path(".ghostpay/kind")
# Overridable for a second cluster beside the machine's one (`ghostpay`, contract §4): its own name and NodePorts.
CLUSTER_NAME = os.environ.get("GHOSTPAY_KIND_CLUSTER", "ghostpay")
K8S_VERSION = "v1.36.3"  # tools/kind/node/go.mod; kindest/node publishes the same tags
OFFICIAL_IMAGE = f"kindest/node:{K8S_VERSION}"
NODE_IMAGE_ENV = "GHOSTPAY_KIND_NODE_IMAGE"
PULL_ENV = "GHOSTPAY_KIND_PULL"
ZONES = ("zone-a", "zone-b")
WORKERS_PER_ZONE = 2  # the services spread over zones with DoNotSchedule: a drain needs a second node in the zone
NODE_PORT_BASE = int(os.environ.get("GHOSTPAY_KIND_NODE_PORT_BASE", "30080"))
NODE_PORTS = tuple(NODE_PORT_BASE + offset for offset in range(4))  # auth, cards, charges, analytics
PULL_TIMEOUT = 30.0
BUILD_TIMEOUT = 3600.0  # a cold build of the binaries and the node image (see tools/kind/)
UP_TIMEOUT = 600.0
_TOOLS = Path(__file__).resolve().parents[2] / "tools"


class KindError(RuntimeError):
    """The kind cluster could not be built, created, reached or deleted."""


@dataclass(frozen=True)
class KindCluster:
    """A running kind cluster: its directory, kubeconfig, kind binary and node image."""

    dir: Path
    kind: Path
    node_image: str

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"


def up(directory: Path = DEFAULT_DIR, *, timeout: float = UP_TIMEOUT) -> KindCluster:
    """Creates the cluster (or reuses the running one), writes `directory/kubeconfig`, waits until every node
    is Ready and CoreDNS answers, and loads the GhostPay image if Docker has it."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    _script("docker/ensure.sh")
    kind = kind_binary()
    if is_running():
        image = _running_image()
        _log(f"reusing the running kind cluster {CLUSTER_NAME} (node image {image})")
        _kind(kind, "export", "kubeconfig", "--name", CLUSTER_NAME, f"--kubeconfig={directory / 'kubeconfig'}")
    else:
        image = node_image()
        config = directory / "kind.yaml"
        own = image if is_own_image(image) else None
        config.write_text(yaml.safe_dump(cluster_config(own_image=own), sort_keys=False))
        _log(f"creating kind cluster {CLUSTER_NAME} from {image}")
        _raise_inotify_limits()
        started = time.monotonic()
        _kind(kind, "delete", "cluster", "--name", CLUSTER_NAME)  # leftovers of a cluster that half-exists
        _kind(
            kind,
            "create",
            "cluster",
            "--name",
            CLUSTER_NAME,
            f"--image={image}",
            f"--config={config}",
            f"--kubeconfig={directory / 'kubeconfig'}",
            timeout=_left(deadline),
        )
        _log(f"kind created the nodes in {time.monotonic() - started:.0f} s")
    cluster = KindCluster(directory, kind, image)
    if is_own_image(image):
        kindnetwork.connect(node_containers(), deadline)
    kindnetwork.wait_ready(node_containers()[0], deadline)
    load_ghostpay_image(cluster)
    return cluster


def down(directory: Path = DEFAULT_DIR) -> None:
    """Deletes the cluster's node containers (and their volumes) and what `up` wrote in `directory`.

    What `kind delete cluster` does to the containers, without kind: `down` builds and installs nothing."""
    directory = directory.resolve()
    if _docker("info").returncode == 0 and (nodes := node_containers()):
        removed = _docker("rm", "--force", "--volumes", *nodes)
        if removed.returncode != 0:
            raise KindError(f"docker rm of {', '.join(nodes)} failed: {removed.stderr.strip()}")
    for name in ("kubeconfig", "kind.yaml"):
        (directory / name).unlink(missing_ok=True)
    if directory.exists() and not any(directory.iterdir()):
        directory.rmdir()


def is_running() -> bool:
    """True when every node container of the cluster exists and runs."""
    nodes = node_containers()
    states = [_docker("inspect", "-f", "{{.State.Running}}", node).stdout.strip() for node in nodes]
    return bool(nodes) and all(state == "true" for state in states)


def node_containers() -> list[str]:
    """The cluster's node containers, control plane first (kind labels each with its cluster and role)."""
    listed = _docker(
        "ps", "-a", "--filter", f"label=io.x-k8s.kind.cluster={CLUSTER_NAME}", "--format", "{{.Names}}"
    ).stdout.split()
    return sorted(listed, key=lambda name: (not name.endswith("-control-plane"), name))


def worker_containers() -> list[str]:
    """The cluster's worker node containers (where pods run: the control plane is tainted NoSchedule)."""
    return [name for name in node_containers() if not name.endswith("-control-plane")]


def cluster_config(*, own_image: str | None) -> dict[str, object]:
    """kind's configuration: the nodes, the zone labels and the port mappings; with `own_image` (the image
    made here), no default CNI and the kubeadm settings this machine needs."""
    mappings = [
        {"containerPort": port, "hostPort": port, "listenAddress": "127.0.0.1", "protocol": "TCP"}
        for port in NODE_PORTS
    ]
    config: dict[str, object] = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [
            {"role": "control-plane", "extraPortMappings": mappings},
            *(
                {"role": "worker", "labels": {"topology.kubernetes.io/zone": zone}}
                for zone in ZONES
                for _ in range(WORKERS_PER_ZONE)
            ),
        ],
    }
    if own_image is not None:
        config["networking"] = {"disableDefaultCNI": True}
        config["kubeadmConfigPatches"] = [yaml.safe_dump(patch) for patch in _own_image_patches(own_image)]
    return config


def _own_image_patches(image: str) -> list[dict[str, object]]:
    # Docker here runs with cgroup v1 and the cgroupfs driver (the image's containerd agrees); kind's 0%
    # eviction thresholds are refused by this kubelet; nf_conntrack_max is read-only inside a container.
    threshold = {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"}
    kubelet = {"cgroupDriver": "cgroupfs", "failCgroupV1": False, "evictionHard": threshold}
    # etcd is the control plane's own build, a later patch release than the one kubeadm names.
    etcd_tag = _etcd_tag(image)
    return [
        {"kind": "KubeletConfiguration", **kubelet},
        {"kind": "KubeProxyConfiguration", "conntrack": {"maxPerCore": 0}},
        {"kind": "ClusterConfiguration", "etcd": {"local": {"imageTag": etcd_tag}}},
    ]


def node_image() -> str:
    """The node image to create the cluster from (see the module's docstring for the order)."""
    if os.environ.get(NODE_IMAGE_ENV):
        return os.environ[NODE_IMAGE_ENV]
    if _docker("image", "inspect", OFFICIAL_IMAGE).returncode == 0:
        return OFFICIAL_IMAGE
    if os.environ.get(PULL_ENV, "1") != "0":
        try:
            pulled = _docker("pull", OFFICIAL_IMAGE, timeout=PULL_TIMEOUT)
        except subprocess.TimeoutExpired:
            pulled = None
        if pulled is not None and pulled.returncode == 0:
            return OFFICIAL_IMAGE
    _log(f"{OFFICIAL_IMAGE} is not here; using the node image made here (tools/kind/node-image.sh)")
    return _own_image()


def is_own_image(image: str) -> bool:
    """True for a node image made by tools/kind/node-image.sh (it names its etcd tag in a label)."""
    return bool(_etcd_tag(image))


def _etcd_tag(image: str) -> str:
    label = '{{index .Config.Labels "io.ghostpay.etcd-tag"}}'
    inspected = _docker("image", "inspect", "--format", label, image)
    return inspected.stdout.strip() if inspected.returncode == 0 and "no value" not in inspected.stdout else ""


def _own_image() -> str:
    return _script("kind/node-image.sh").strip().splitlines()[-1]


def kind_binary() -> Path:
    """kind, built once from its module (tools/kind/binaries.sh)."""
    for line in _script("kind/binaries.sh", "kind").splitlines():
        name, _, path = line.partition("=")
        if name == "kind":
            return Path(path)
    raise KindError("tools/kind/binaries.sh did not report kind")


def ghostpay_image() -> str:
    """The image `make image` builds: ghostpay/ghostpay:<package version>."""
    return f"ghostpay/ghostpay:{importlib.metadata.version('ghostpay')}"


def load_ghostpay_image(cluster: KindCluster) -> bool:
    """Loads the GhostPay image into every node (kind skips nodes that have it); False if Docker lacks it."""
    image = ghostpay_image()
    if _docker("image", "inspect", image).returncode != 0:
        _log(f"{image} not found (run `make image`); the cluster runs without it")
        return False
    _kind(cluster.kind, "load", "docker-image", image, "--name", CLUSTER_NAME)
    _log(f"{image} is in the cluster's nodes")
    return True


def _running_image() -> str:
    inspected = _docker("inspect", "-f", "{{.Config.Image}}", node_containers()[0])
    return inspected.stdout.strip()


# --- processes -----------------------------------------------------------------------------------


# kind's "known issues": every node runs a kubelet, kube-proxy and containerd that each take inotify instances from
# the host's one per-user budget; with five nodes the default 128 runs out ("too many open files" in kube-proxy).
INOTIFY_LIMITS = {"fs.inotify.max_user_instances": 512, "fs.inotify.max_user_watches": 524288}


def _raise_inotify_limits() -> None:
    """Raises the host's inotify limits to kind's recommended values where they are lower (as root; else says so)."""
    for key, wanted in INOTIFY_LIMITS.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        try:
            if int(path.read_text()) < wanted:
                path.write_text(str(wanted))
                _log(f"raised {key} to {wanted} (kind's recommendation for several nodes)")
        except (OSError, ValueError) as exc:
            _log(f"could not raise {key} to {wanted} ({exc}): nodes may fail with 'too many open files'")


def _script(name: str, *args: str) -> str:
    """Runs a tools/ script (its progress goes to our stderr) and returns its stdout."""
    command = ["bash", str(_TOOLS / name), *args]
    result = subprocess.run(  # noqa: S603 - our own script
        command, stdout=subprocess.PIPE, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise KindError(f"tools/{name} failed ({result.returncode})")
    return result.stdout


def _kind(kind: Path, *args: str, timeout: float = 300.0) -> None:
    command = [str(kind), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603 - ours
    if result.returncode != 0:
        raise KindError(f"kind {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def _docker(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    command = ["docker", *args]  # the Docker CLI on $PATH (tools/docker/ensure.sh installs it)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise KindError("the kind cluster did not come up in time")
    return left


def _log(message: str) -> None:
    print(f"kind: {message}", file=sys.stderr, flush=True)
