"""The pod network of a kind cluster whose node image has no CNI of its own, and the wait for a usable cluster.

kindnetd's method, done once from the host instead of by a DaemonSet (kindnetd's source cannot be fetched here):
each node gets a bridge CNI configuration on its own `spec.podCIDR` (the standard `bridge`, `host-local` and
`portmap` plugins, from Debian's containernetworking-plugins in the node image), and a route to every other
node's pod CIDR through that node's address. Nodes then turn Ready. Both steps are idempotent, so `connect`
also mends nodes whose containers were restarted (routes do not survive that). kubectl is the one inside the
control-plane node, with the cluster's admin kubeconfig.
"""

from __future__ import annotations

import json
import subprocess
import time

CNI_CONFIG = "/etc/cni/net.d/10-ghostpay-bridge.conflist"
_POLL_SECONDS = 1.0


class NetworkError(RuntimeError):
    """The nodes could not be connected, or did not turn Ready in time."""


def bridge_config(pod_cidr: str) -> str:
    """The CNI configuration of one node: a bridge (the pods' gateway) with addresses from `pod_cidr`."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "ghostpay-bridge",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    # A pod reaching its own Service through kube-proxy comes back through the bridge.
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def connect(nodes: list[str], deadline: float) -> None:
    """Writes each node's CNI configuration and routes every node to the others' pod CIDRs."""
    addresses = _node_addresses(nodes[0], deadline)
    for node, (_, cidr) in addresses.items():
        _exec(node, "sh", "-c", f"mkdir -p /etc/cni/net.d && cat > {CNI_CONFIG}", input=bridge_config(cidr))
        for other, (other_address, other_cidr) in addresses.items():
            if other != node:
                _exec(node, "ip", "route", "replace", other_cidr, "via", other_address)


def wait_ready(control_plane: str, deadline: float) -> None:
    """Waits until every node is Ready and CoreDNS has its replicas available."""
    _wait(control_plane, deadline, "wait", "--for=condition=Ready", "nodes", "--all")
    _wait(control_plane, deadline, "-n", "kube-system", "rollout", "status", "deployment/coredns")


def _node_addresses(control_plane: str, deadline: float) -> dict[str, tuple[str, str]]:
    """Each node's InternalIP and pod CIDR, once the controller manager has given every node one."""
    while True:
        listed = json.loads(_kubectl(control_plane, "get", "nodes", "-o", "json", timeout=_left(deadline)))
        found = {
            item["metadata"]["name"]: (
                next(a["address"] for a in item["status"]["addresses"] if a["type"] == "InternalIP"),
                item["spec"].get("podCIDR", ""),
            )
            for item in listed["items"]
        }
        if found and all(cidr for _, cidr in found.values()):
            return found
        _left(deadline)
        time.sleep(_POLL_SECONDS)


def _wait(control_plane: str, deadline: float, *args: str) -> None:
    seconds = max(int(_left(deadline)), 1)
    _kubectl(control_plane, *args, f"--timeout={seconds}s", timeout=seconds + 30)


def _kubectl(control_plane: str, *args: str, timeout: float) -> str:
    return _exec(control_plane, "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", *args, timeout=timeout)


def _exec(container: str, *command: str, input: str | None = None, timeout: float = 60.0) -> str:
    docker_exec = ["docker", "exec", "-i", container, *command]  # the Docker CLI on $PATH
    result = subprocess.run(  # noqa: S603 - arguments built by this module
        docker_exec,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise NetworkError(f"{' '.join(command)} on {container} failed: {result.stderr.strip()}")
    return result.stdout


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise NetworkError("the kind cluster's nodes did not turn Ready in time")
    return left
