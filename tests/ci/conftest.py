"""The `actionlint` fixture: actionlint built from its Go module and Debian's shellcheck, by
tools/actionlint/build.sh (cached after the first build; `make actionlint` does the same)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Actionlint:
    binary: str
    shellcheck: str

    def run(self, cwd: Path) -> subprocess.CompletedProcess[str]:
        """actionlint on every workflow under `cwd`/.github/workflows, running shellcheck on each `run:` block."""
        return subprocess.run(
            [self.binary, "-shellcheck", self.shellcheck, "-no-color"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="session")
def actionlint() -> Actionlint:
    built = subprocess.run(
        ["bash", str(REPO_ROOT / "tools" / "actionlint" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=1800,  # a cold build downloads and compiles the module
        check=False,
    )
    assert built.returncode == 0, built.stderr
    paths = dict(line.split("=", 1) for line in built.stdout.splitlines())
    return Actionlint(paths["actionlint"], paths["shellcheck"])
