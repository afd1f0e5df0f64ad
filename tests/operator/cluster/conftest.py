"""The operator's integration fixture: one real local control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler) with KWOK nodes, shared by the whole session.

`cluster` starts it in a short directory under /tmp (the first run ever also builds the binaries,
see tools/controlplane/build.sh) and deletes it at the end. With GHOSTPAY_TEST_CLUSTER_DIR set, it
uses (or starts) the cluster in that directory instead and leaves it running, for quick iterations.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ghostpay_devtools import localcluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[localcluster.Cluster]:
    kept = os.environ.get("GHOSTPAY_TEST_CLUSTER_DIR")
    if kept:
        yield localcluster.up(Path(kept))
        return
    directory = Path(tempfile.mkdtemp(prefix="gpk-", dir="/tmp"))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield localcluster.up(directory)
    finally:
        localcluster.down(directory)
        shutil.rmtree(directory, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    """pytest dies on SIGTERM (a `timeout`, a CI stop) without tearing down, which would leave the
    cluster's processes running; as an interrupt, the teardown above still runs."""
    raise KeyboardInterrupt


@pytest.fixture
def namespace(cluster: localcluster.Cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = f"t-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
