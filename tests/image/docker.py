"""The container image, built by the same script as `make image` (tools/image/build.sh: cached, about a second
when nothing changed), and helpers to run it the way Kubernetes runs the operator's pods."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"ghostpay/ghostpay:{VERSION}"
BUILD_TIMEOUT = 1800  # a cold build (Debian base, apt, wheels) takes a few minutes
# What the operator's pods get (builders/pods.py): read-only root, /tmp an emptyDir, no capabilities.
HARDENED = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def build() -> str:
    """Build the image (or find it cached); print the build's steps; its name."""
    result = subprocess.run(
        [str(ROOT / "tools/image/build.sh")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    print(result.stderr)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == IMAGE
    return IMAGE


def inspect(image: str) -> dict[str, Any]:
    output = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=True)
    inspected: dict[str, Any] = json.loads(output.stdout)[0]
    return inspected


def run(
    image: str, *command: str, options: tuple[str, ...] = (), timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`docker run --rm` hardened as in a pod, plus `options`; output captured as text."""
    return subprocess.run(
        ["docker", "run", "--rm", *HARDENED, *options, image, *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
