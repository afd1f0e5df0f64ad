"""The README's offline path on kind, run as written (issue 11: every command in it is one that a test runs).

The block after `<!-- test: kind-offline -->` in the README's "The whole path on kind" is extracted and run, in
order, by one bash (`set -euxo pipefail`: each command is echoed, the first failure stops it) from the repository's
root, as a user pastes it. Nothing is substituted: its paths are the defaults (`.ghostpay/kind`, the cache
directories), its `ghostpay cluster up --kind` reuses the cluster the `kind_cluster` fixture holds (the same
cluster, `ghostpay`, whatever directory keeps its kubeconfig), and the charge it makes at the end must be approved.
Afterwards the instance, the release and the namespace are removed, and so is `.ghostpay/kind` if the block made it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helm import helm
from tests.kind.conftest import KindTestCluster

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKER = "<!-- test: kind-offline -->"
NAMESPACE = "shop"  # the README's
TIMEOUT = 1200.0  # the block's own waits are bounded (kubectl wait 10m, curl retries); cached builds take seconds


def offline_block(text: str) -> str:
    """The ```sh block right after MARKER."""
    found = re.search(re.escape(MARKER) + r"\s*\n```sh\n(.*?)\n```", text, re.DOTALL)
    assert found, f"README.md has no ```sh block right after {MARKER}"
    return found.group(1)


def test_the_marked_block_is_the_readmes_kind_flow() -> None:
    """The block the test runs is the whole flow the issue names (so emptying it cannot pass unnoticed)."""
    block = offline_block(README.read_text())
    for command in (
        "make image",
        "ghostpay cluster up --kind",
        "kind load docker-image",
        "helm install ghostpay manifests/helm/ghostpay -n shop --create-namespace --set demo.enabled=true",
        "kubectl wait ghostpayinstance/payments",
        "127.0.0.1:30082/charges",
        "kubectl port-forward",
    ):
        assert command in block, command


@pytest.fixture
def kind_cleanup(kind_cluster: KindTestCluster) -> Iterator[KindTestCluster]:
    """Removes what the block made: the instance first (while the operator runs, so its finalizer is lifted), then
    the release and the namespace; `.ghostpay/kind` and `merchant.json` if they were not there before."""
    made = [p for p in (ROOT / ".ghostpay/kind", ROOT / "merchant.json") if not p.exists()]
    try:
        yield kind_cluster
    finally:
        kubeconfig = kind_cluster.kubeconfig
        subprocess.run(
            [str(kind_cluster.kubectl_binary), f"--kubeconfig={kubeconfig}", "delete", "ghostpayinstance", "payments",
             "-n", NAMESPACE, "--ignore-not-found", "--timeout=180s"],
            capture_output=True, timeout=200, check=False,
        )  # fmt: skip
        helm.run("uninstall", "ghostpay", "-n", NAMESPACE, "--wait", kubeconfig=kubeconfig, timeout=300)
        kind_cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--ignore-not-found", timeout=300)
        for path in made:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def test_the_readmes_offline_commands_run_and_charge_a_card_on_kind(kind_cleanup: KindTestCluster) -> None:
    script = f"set -euxo pipefail\n{offline_block(README.read_text())}\n"
    started = time.monotonic()
    # Its own session: the background port-forward is killed with it if the block stops half-way.
    process = subprocess.Popen(
        ["bash", "-c", script], cwd=ROOT, env=os.environ.copy(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        _kill_group(process.pid)  # whatever the block left running (nothing, when it ran to its end)
    print(f"\nthe README's offline kind block: {time.monotonic() - started:.1f} s\n{stderr[-3000:]}")
    assert process.returncode == 0, f"the README's block failed:\n{stderr[-6000:]}"
    charge, kids = stdout.strip().splitlines()[-2:]  # what the block prints: the charge, then the JWKS' kids
    assert json.loads(charge)["status"] == "approved", stdout
    assert json.loads(kids) and all(isinstance(kid, str) for kid in json.loads(kids)), stdout


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
