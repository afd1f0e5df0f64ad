"""The kind fixture: one real cluster (`ghostpay cluster up --kind`, run as a user runs it) shared by the session.

`kind_cluster` creates it in a temporary directory, and at the end runs `ghostpay cluster down --kind` and
checks that no node container is left. With GHOSTPAY_TEST_KIND_DIR set it uses that directory and leaves the
cluster running, for quick iterations: a kind cluster of the fixed name (`ghostpay`, contract §4) already running
is then reused. Since there can be only one such cluster (and one set of NodePorts) on a machine, a test session
holds LOCK for as long as it uses the cluster: a second session on the same machine waits for it instead of
deleting the first one's cluster. A session that does not keep its cluster and finds one running (a killed
session's, or one a user brought up by hand) deletes it first and starts from a new one: what was installed in it
(a killed chaos suite's demo release) made the suite's own `helm install`s fail.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ghostpay_devtools import kindcluster, localcluster

GHOSTPAY = Path(sys.executable).parent / "ghostpay"
UP_TIMEOUT = 3600.0  # the first run ever builds kind, the node binaries and the node image
_HTTPSERVER = Path(__file__).parent / "httpserver"
LOCK = Path(f"/tmp/{kindcluster.CLUSTER_NAME}-kind-cluster.lock")  # one per cluster (GHOSTPAY_KIND_CLUSTER)


@dataclass(frozen=True)
class KindTestCluster:
    """The running cluster as the tests see it: its directory, kubectl, kind, how long `up` took, whether it is kept."""

    dir: Path
    kubectl_binary: Path
    kind: Path
    up_seconds: float
    kept: bool  # GHOSTPAY_TEST_KIND_DIR: the cluster outlives the session; else it is deleted at its end

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120.0) -> str:
        """Runs the host's kubectl against the cluster and returns its output (fails the test if it fails)."""
        command = [str(self.kubectl_binary), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout


def cluster_up(directory: Path) -> float:
    """Runs `ghostpay cluster up --kind --dir DIR` as a user would; returns how long it took."""
    started = time.monotonic()
    command = [str(GHOSTPAY), "cluster", "up", "--kind", "--dir", str(directory)]
    # No pull of kindest/node: traffic stays on this machine (the node image made here is used unless Docker has it).
    env = {**os.environ, kindcluster.PULL_ENV: "0"}
    subprocess.run(command, env=env, check=True, timeout=UP_TIMEOUT)
    return time.monotonic() - started


def cluster_down(directory: Path) -> None:
    """Runs `ghostpay cluster down --kind --dir DIR` as a user would."""
    subprocess.run([str(GHOSTPAY), "cluster", "down", "--kind", "--dir", str(directory)], check=True)


@pytest.fixture(scope="session")
def kind_cluster() -> Iterator[KindTestCluster]:
    kept = os.environ.get("GHOSTPAY_TEST_KIND_DIR")
    directory = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="gpkind-", dir="/tmp"))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    lock = _hold_cluster_lock()
    try:
        if not kept:
            _delete_leftover_cluster(directory)
        seconds = cluster_up(directory)
        print(f"\nghostpay cluster up --kind: {seconds:.1f} s", file=sys.stderr)
        kubectl = localcluster.resolve_binaries()["kubectl"]
        yield KindTestCluster(directory, kubectl, kindcluster.kind_binary(), seconds, kept=bool(kept))
    finally:
        if not kept:
            cluster_down(directory)
            shutil.rmtree(directory, ignore_errors=True)
            left = kindcluster.node_containers()
            assert not left, f"`ghostpay cluster down --kind` left node containers: {left}"
        signal.signal(signal.SIGTERM, previous)
        lock.close()


def _delete_leftover_cluster(directory: Path) -> None:
    """A cluster found running when the session starts deleted, saying so (docker may not be installed yet)."""
    if shutil.which("docker") and (nodes := kindcluster.node_containers()):
        print(f"\ndeleting the kind cluster found running (nodes {', '.join(nodes)})", file=sys.stderr)
        cluster_down(directory)


def _hold_cluster_lock() -> io.TextIOWrapper:
    """Takes the machine's kind lock, saying so while it waits (another session's kind tests may take minutes)."""
    lock = LOCK.open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"\nwaiting for {LOCK}: another test session is using the kind cluster", file=sys.stderr)
        started = time.monotonic()
        fcntl.flock(lock, fcntl.LOCK_EX)
        print(f"got {LOCK} after {time.monotonic() - started:.0f} s", file=sys.stderr)
    return lock


def _interrupt(signum: int, frame: object) -> None:
    """pytest dies on SIGTERM without tearing down, which would leave the node containers running."""
    raise KeyboardInterrupt


@pytest.fixture(scope="session")
def http_image(kind_cluster: KindTestCluster) -> str:
    """A tiny HTTP server (tests/kind/httpserver, static Go) as a one-file image, loaded into the cluster.
    Tagged with a hash of its source, so it is built once."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(_HTTPSERVER.iterdir()))).hexdigest()[:12]
    image = f"ghostpay/kind-test-http:{digest}"
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode != 0:
        with tempfile.TemporaryDirectory() as root:
            env = {**os.environ, "CGO_ENABLED": "0"}
            build = ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", f"{root}/server", "."]
            subprocess.run(build, cwd=_HTTPSERVER, env=env, check=True, timeout=600)
            tar = subprocess.run(["tar", "-C", root, "-c", "server"], capture_output=True, check=True)
            subprocess.run(["docker", "import", "-", image], input=tar.stdout, capture_output=True, check=True)
    load = [str(kind_cluster.kind), "load", "docker-image", image, "--name", kindcluster.CLUSTER_NAME]
    subprocess.run(load, capture_output=True, check=True, timeout=300)
    return image
