"""The README's offline path on kind as a test runs it (issue 11: every command in it is one that a test runs).

The ```sh block right after `<!-- test: kind-offline -->` in the README's "The whole path on kind" is run, in
order, by one bash (`set -euxo pipefail`: each command is echoed, the first failure stops it) from the repository's
root, as a user pastes it. Nothing is substituted: its paths are the defaults (`.ghostpay/kind`, the cache
directories), and its `ghostpay cluster up --kind` reuses the cluster the `kind_cluster` fixture holds (the same
cluster, `ghostpay`, whatever directory keeps its kubeconfig).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKER = "<!-- test: kind-offline -->"
NAMESPACE = "shop"  # the README's
TIMEOUT = 1200.0  # the block's own waits are bounded (kubectl wait 10m, curl retries); cached builds take seconds
# What the block writes in the checkout besides the cluster (removed afterwards unless it was there before).
WRITES = (ROOT / ".ghostpay", ROOT / ".ghostpay/kind", ROOT / "merchant.json")


def offline_block(text: str | None = None) -> str:
    """The ```sh block right after MARKER."""
    found = re.search(re.escape(MARKER) + r"\s*\n```sh\n(.*?)\n```", text or README.read_text(), re.DOTALL)
    assert found, f"README.md has no ```sh block right after {MARKER}"
    return found.group(1)


@dataclass(frozen=True)
class BlockRun:
    stdout: str
    stderr: str
    seconds: float


@contextlib.contextmanager
def checkout_writes_removed() -> Iterator[None]:
    made = [path for path in WRITES if not path.exists()]
    try:
        yield
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def run_offline_block() -> BlockRun:
    """Runs the block; fails (with the end of its trace) if any command fails."""
    script = f"set -euxo pipefail\n{offline_block()}\n"
    started = time.monotonic()
    # Its own session: the background port-forward goes with it if the block stops half-way.
    process = subprocess.Popen(
        ["bash", "-c", script], cwd=ROOT, env=os.environ.copy(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # whatever it left running (nothing, when it ran to its end)
    assert process.returncode == 0, f"the README's kind block failed:\n{stderr[-6000:]}"
    return BlockRun(stdout, stderr, time.monotonic() - started)
