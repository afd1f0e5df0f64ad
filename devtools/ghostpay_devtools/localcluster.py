"""A local, simulated Kubernetes cluster: `ghostpay cluster up/down` and the operator's test fixture.

Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler, started by `kwokctl` with its
`binary` runtime from local binaries (built once by `tools/controlplane/build.sh`, or taken from
`$KUBEBUILDER_ASSETS` / `$PATH`; nothing is downloaded). KWOK stands in for the kubelets: it keeps
the nodes Ready and makes scheduled pods Running and Ready, except pods annotated
`ghostpay.io/simulate: unready`, which become Running but never Ready (see `localcluster_data/stages.yaml`).
Every component listens on 127.0.0.1.

Layout of the cluster directory (default `./.ghostpay/cluster`):
    kubeconfig      the cluster's kubeconfig (context `kwok-ghostpay`)
    kwokctl.yaml    the configuration handed to kwokctl (binaries, loopback, stages)
    binaries.json   the binaries it runs (so that `down` needs no build)
    kwokctl.log     what kwokctl said
    kwok/           kwokctl's work directory: cluster state, component logs and pid files
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_DIR = Path(".ghostpay/cluster")
CLUSTER_NAME = "ghostpay"
ZONES = ("zone-a", "zone-b")
DEFAULT_NODES = 4
NODE_LABEL = "ghostpay.io/local-cluster"
SIMULATE_ANNOTATION = "ghostpay.io/simulate"
BINARY_NAMES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "kwokctl",
)
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")
SERVICE_CIDR = "10.96.0.0/16"
NODE_ALLOCATABLE = {"cpu": "32", "memory": "128Gi", "pods": "250"}
UP_TIMEOUT = 300.0
DOWN_TIMEOUT = 60.0
_KILL_WAIT_SECONDS = 5.0  # a SIGKILLed process is gone within moments (unless stuck in the kernel)
# A cold build of the binaries takes about 9 minutes on two cores; later runs read the cache.
BUILD_TIMEOUT = 3600.0
_BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "controlplane" / "build.sh"


class ClusterError(RuntimeError):
    """The local cluster could not be built, started, reached or stopped."""


@dataclass(frozen=True)
class Cluster:
    """A running local cluster: where it lives, its kubeconfig, and the binaries it runs."""

    dir: Path
    binaries: Mapping[str, Path]

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against this cluster and returns its result (raises ClusterError if `check` and it fails)."""
        command = [str(self.binaries["kubectl"]), f"--kubeconfig={self.kubeconfig}", *args]
        result = _run(command, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result


# --- public entry points -------------------------------------------------------------------------


def up(directory: Path = DEFAULT_DIR, *, nodes: int = DEFAULT_NODES, timeout: float = UP_TIMEOUT) -> Cluster:
    """Starts the cluster in `directory` (or reuses the one running there) and waits until it is usable:
    the API server answers, `nodes` KWOK nodes are Ready and the `default` ServiceAccount exists."""
    if nodes < len(ZONES):
        raise ValueError(f"need at least {len(ZONES)} nodes, one per zone")
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(directory, resolve_binaries())
    deadline = time.monotonic() + timeout
    if not is_running(cluster):
        _start(cluster, deadline)
    _wait_api(cluster, deadline)
    cluster.kubectl("apply", "-f", "-", input=node_manifests(nodes), timeout=_left(deadline))
    _wait_nodes(cluster, deadline)
    _wait_default_service_account(cluster, deadline)
    return cluster


def down(directory: Path = DEFAULT_DIR, *, timeout: float = DOWN_TIMEOUT) -> None:
    """Deletes the cluster in `directory` and everything it wrote there; no component process outlives it."""
    directory = directory.resolve()
    workdir = _cluster_workdir(directory)
    # Which processes are ours is settled now: one that kwokctl is stopping may already have lost its command line.
    processes = _our_processes(_component_pids(workdir), workdir)
    if workdir.exists():
        kwokctl = _recorded_kwokctl(directory)
        if kwokctl is not None:
            _kwokctl(
                directory,
                kwokctl,
                "delete",
                "cluster",
                f"--kubeconfig={directory / 'kubeconfig'}",
                timeout=timeout,
                check=False,
            )
    _reap(processes, time.monotonic() + timeout)
    for name in ("kubeconfig", "kwokctl.yaml", "kwokctl.log", "binaries.json"):
        (directory / name).unlink(missing_ok=True)
    shutil.rmtree(directory / "kwok", ignore_errors=True)
    if directory.exists() and not any(directory.iterdir()):
        directory.rmdir()


def is_running(cluster: Cluster) -> bool:
    """True when a cluster was created in `cluster.dir`, each of its components runs and the API server
    answers /readyz."""
    workdir = _cluster_workdir(cluster.dir)
    if not cluster.kubeconfig.exists() or not (workdir / "kwok.yaml").exists():
        return False
    pids = _component_pids(workdir)
    if len(pids) < len(COMPONENTS) or not all(_belongs_to(pid, workdir) for pid in pids):
        return False
    try:
        return cluster.kubectl("get", "--raw=/readyz", timeout=10.0, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


# --- binaries ------------------------------------------------------------------------------------


def resolve_binaries() -> dict[str, Path]:
    """The seven binaries the cluster needs: from build.sh (which honours $KUBEBUILDER_ASSETS and $PATH,
    else builds once into ~/.cache/ghostpay/controlplane/), or, without the source tree, from those two."""
    if _BUILD_SCRIPT.exists():
        return _binaries_from_build_script()
    found = {name: _system_binary(name) for name in BINARY_NAMES}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        raise ClusterError(
            f"missing {', '.join(missing)}: put them in $KUBEBUILDER_ASSETS or on $PATH, "
            "or run tools/controlplane/build.sh from a GhostPay checkout"
        )
    return {name: path for name, path in found.items() if path is not None}


def _binaries_from_build_script() -> dict[str, Path]:
    result = _run(["bash", str(_BUILD_SCRIPT)], timeout=BUILD_TIMEOUT, stderr_to_terminal=True)
    if result.returncode != 0:
        raise ClusterError(f"{_BUILD_SCRIPT} failed ({result.returncode})")
    paths = parse_binary_paths(result.stdout)
    missing = sorted(set(BINARY_NAMES) - set(paths))
    if missing:
        raise ClusterError(f"{_BUILD_SCRIPT} did not report {', '.join(missing)}")
    return paths


def parse_binary_paths(text: str) -> dict[str, Path]:
    """Reads build.sh's `name=/path` lines."""
    paths: dict[str, Path] = {}
    for line in text.splitlines():
        name, sep, path = line.partition("=")
        if sep and name in BINARY_NAMES:
            paths[name] = Path(path)
    return paths


def _system_binary(name: str) -> Path | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and os.access(Path(assets) / name, os.X_OK):
        return (Path(assets) / name).resolve()
    found = shutil.which(name)
    return Path(found) if found else None


def _recorded_kwokctl(directory: Path) -> Path | None:
    """The kwokctl that created the cluster in `directory`, if it still exists (`down` never builds)."""
    try:
        path = Path(json.loads((directory / "binaries.json").read_text())["kwokctl"])
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return path if path.exists() else None


# --- starting ------------------------------------------------------------------------------------


def _start(cluster: Cluster, deadline: float) -> None:
    """Creates the cluster, or restarts the components of one that exists but does not answer. A stale
    one that cannot be restarted (binaries moved, state broken) is deleted and created afresh."""
    existed = _cluster_workdir(cluster.dir).exists()
    _write_kwokctl_config(cluster)
    try:
        _create(cluster, deadline)
    except ClusterError:
        if not existed:
            raise
        down(cluster.dir)
        cluster.dir.mkdir(parents=True, exist_ok=True)
        _write_kwokctl_config(cluster)
        _create(cluster, deadline)


def _create(cluster: Cluster, deadline: float) -> None:
    seconds = max(int(_left(deadline)), 1)
    _kwokctl(
        cluster.dir,
        cluster.binaries["kwokctl"],
        "create",
        "cluster",
        "--runtime=binary",
        f"--config={cluster.dir / 'kwokctl.yaml'}",
        f"--kubeconfig={cluster.kubeconfig}",
        f"--timeout={seconds}s",
        # A throwaway cluster: etcd need not fsync.
        "--extra-args=etcd=unsafe-no-fsync=true",
        # Room for many Services (the default /24 holds 254 ClusterIPs; the operator benchmark needs more).
        f"--extra-args=kube-apiserver=service-cluster-ip-range={SERVICE_CIDR}",
        timeout=seconds + 10,
    )


# kube-controller-manager and kube-scheduler send the API server at most 20 and 50 requests a second by default
# (bursts of 30 and 100: client-side throttling, sized for a big cluster's shared API server). Here every node is
# simulated and the API server is ours alone: at those rates their throttling, not the machine, set how fast pods
# came up — 50 instances' 450 pods took 68 s in `make bench-operator`, 43 to 54 s with these.
RATE_LIMITED = ("kube-controller-manager", "kube-scheduler")
CONTROLLER_RATE = [{"key": "kube-api-qps", "value": "200"}, {"key": "kube-api-burst", "value": "400"}]


def kwokctl_config(binaries: Mapping[str, Path]) -> str:
    """The configuration handed to kwokctl: local binaries only, everything on 127.0.0.1, RBAC and
    admission on as in a real cluster, kube-controller-manager and kube-scheduler on (at CONTROLLER_RATE), and our
    stages."""
    options = {
        "runtime": "binary",
        "bindAddress": "127.0.0.1",
        "securePort": True,
        "kubeAuthorization": True,
        "kubeAdmission": True,
        "quietPull": True,
        "components": list(COMPONENTS),
        "etcdBinary": str(binaries["etcd"]),
        "kubeApiserverBinary": str(binaries["kube-apiserver"]),
        "kubeControllerManagerBinary": str(binaries["kube-controller-manager"]),
        "kubeSchedulerBinary": str(binaries["kube-scheduler"]),
        "kubectlBinary": str(binaries["kubectl"]),
        "kwokControllerBinary": str(binaries["kwok"]),
    }
    document = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": options,
        "componentsPatches": [{"name": name, "extraArgs": CONTROLLER_RATE} for name in RATE_LIMITED],
    }
    return yaml.safe_dump(document, sort_keys=False) + "---\n" + stages_yaml()


def stages_yaml() -> str:
    """KWOK's default stages, with pod-ready skipping and pod-unready handling `ghostpay.io/simulate: unready`."""
    return (Path(__file__).with_name("localcluster_data") / "stages.yaml").read_text()


def _write_kwokctl_config(cluster: Cluster) -> None:
    (cluster.dir / "kwokctl.yaml").write_text(kwokctl_config(cluster.binaries))
    record = {name: str(path) for name, path in cluster.binaries.items()}
    (cluster.dir / "binaries.json").write_text(json.dumps(record, indent=2) + "\n")


def node_manifests(count: int) -> str:
    """`count` KWOK nodes spread round-robin over ZONES, with hostname and zone labels and allocatable
    resources; each gets its own pod CIDR so pod IPs never run out across nodes."""
    documents = [_node(index) for index in range(count)]
    return yaml.safe_dump_all(documents, sort_keys=False)


def _node(index: int) -> dict[str, object]:
    name = f"kwok-node-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": ZONES[index % len(ZONES)],
                "type": "kwok",
                NODE_LABEL: "true",
            },
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": {"allocatable": dict(NODE_ALLOCATABLE), "capacity": dict(NODE_ALLOCATABLE)},
    }


# --- waiting -------------------------------------------------------------------------------------


def _wait_api(cluster: Cluster, deadline: float) -> None:
    """On a timeout the error carries kubectl's last answer and the ends of etcd's and the API server's logs:
    `down` deletes the logs with the cluster, so the error is all that is left to explain it."""
    last_answer = ["none"]

    def ready() -> bool:
        result = cluster.kubectl("get", "--raw=/readyz", timeout=10.0, check=False)
        last_answer[0] = (result.stderr or result.stdout).strip()
        return result.returncode == 0

    try:
        _poll(ready, deadline, "the API server to answer /readyz")
    except ClusterError as exc:
        logs = _cluster_workdir(cluster.dir) / "logs"
        tails = "".join(f"\n--- {name}.log ---\n{_tail(logs / f'{name}.log')}" for name in ("etcd", "kube-apiserver"))
        raise ClusterError(f"{exc}; kubectl's last answer: {last_answer[0]}{tails}") from None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc.strerror})"


def _wait_nodes(cluster: Cluster, deadline: float) -> None:
    cluster.kubectl(
        "wait",
        "--for=condition=Ready",
        "node",
        f"--selector={NODE_LABEL}=true",
        f"--timeout={max(int(_left(deadline)), 1)}s",
        timeout=_left(deadline) + 10,
    )


def _wait_default_service_account(cluster: Cluster, deadline: float) -> None:
    """With admission on, pods are refused until kube-controller-manager has created this."""
    _poll(
        lambda: (
            cluster.kubectl(
                "get", "serviceaccount", "default", "--namespace=default", timeout=10.0, check=False
            ).returncode
            == 0
        ),
        deadline,
        "the default ServiceAccount",
    )


def _poll(ready: Callable[[], bool], deadline: float, what: str) -> None:
    while True:
        try:
            if ready():
                return
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() >= deadline:
            raise ClusterError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ClusterError("timed out")
    return left


# --- stopping ------------------------------------------------------------------------------------


def _cluster_workdir(directory: Path) -> Path:
    return directory / "kwok" / "clusters" / CLUSTER_NAME


def _component_pids(workdir: Path) -> list[int]:
    pids = []
    for pid_file in sorted((workdir / "pids").glob("*.pid")):
        try:
            pids.append(int(pid_file.read_text().strip()))
        except (OSError, ValueError):
            continue
    return pids


def _our_processes(pids: Sequence[int], workdir: Path) -> dict[int, str]:
    """The running pids whose command line names the cluster's work directory, with their start times: from then
    on a process is followed by (pid, start time), which survives the loss of its command line as it exits and
    is not fooled by a reused pid."""
    return {pid: started for pid in pids if _belongs_to(pid, workdir) and (started := _start_time(pid))}


def _reap(processes: dict[int, str], deadline: float) -> None:
    """SIGTERM, and wait for the processes to exit; SIGKILL any left at the deadline and wait (briefly) for those
    too, so that none is still running when this returns."""
    for pid in processes:
        _signal(pid, signal.SIGTERM)
    left = _still_running(processes, deadline)
    for pid in left:
        _signal(pid, signal.SIGKILL)
    _still_running(left, time.monotonic() + _KILL_WAIT_SECONDS)


def _still_running(processes: dict[int, str], deadline: float) -> dict[int, str]:
    """Polls until none of `processes` (pid: start time) runs, or the deadline; returns those still running."""
    while processes and time.monotonic() < deadline:
        time.sleep(0.1)
        processes = {pid: started for pid, started in processes.items() if _start_time(pid) == started}
    return processes


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _belongs_to(pid: int, workdir: Path) -> bool:
    """A running (not zombie) process whose command line names `workdir`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return _start_time(pid) is not None and str(workdir).encode() in cmdline


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


# --- processes -----------------------------------------------------------------------------------


def _kwokctl(directory: Path, kwokctl: Path, *args: str, timeout: float, check: bool = True) -> None:
    """Runs `kwokctl --name=ghostpay ARGS` with its work directory inside `directory`; output goes to
    kwokctl.log, whose tail is in the error when it fails."""
    log_path = directory / "kwokctl.log"
    command = [str(kwokctl), f"--name={CLUSTER_NAME}", *args]
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        code = subprocess.run(  # noqa: S603 - our own kwokctl binary, arguments built here
            command,
            env=_kwok_env(directory),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        ).returncode
    if check and code != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-25:])
        raise ClusterError(f"kwokctl {' '.join(args)} failed ({code}); end of {log_path}:\n{tail}")


def _kwok_env(directory: Path) -> dict[str, str]:
    """The environment without KWOK_* overrides (they would change kwokctl's defaults), and with kwokctl's
    work directory -- cluster state, and the default config it would otherwise read from ~/.kwok -- in DIR."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KWOK_")}
    env["KWOK_WORKDIR"] = str(directory / "kwok")
    return env


def _run(
    command: Sequence[str], *, input: str | None = None, timeout: float, stderr_to_terminal: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the cluster's own binaries, arguments built by this module
        list(command),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=None if stderr_to_terminal else subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
