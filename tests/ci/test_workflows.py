"""The GitHub Actions workflows in .github/workflows/: actionlint (with shellcheck on every `run:` block) finds
nothing, and finds each kind of mistake planted in a copy of them, so the check is not vacuous; every action is
pinned by commit SHA; the image is built from the Containerfile with an SBOM and provenance."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ci.conftest import REPO_ROOT, Actionlint

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return loaded


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_actionlint_passes_on_every_workflow(actionlint: Actionlint) -> None:
    assert sorted(path.name for path in WORKFLOWS.iterdir()) == ["ci.yaml", "image.yaml", "release.yaml"]
    result = actionlint.run(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# (file, text replaced, replacement, what actionlint must report)
BROKEN = {
    "undefined step output": ("image.yaml", "steps.meta.outputs.tags", "steps.metadata.outputs.tags", "metadata"),
    "unknown job in needs": ("image.yaml", "needs: image", "needs: build", 'needs job "build" which does not exist'),
    "script injection": (
        "release.yaml",
        'echo "$GITOPS_PATH already asks for $VERSION"',
        'echo "${{ github.event.pull_request.title }}"',
        "potentially untrusted",
    ),
    "shellcheck: unquoted expansion": ("ci.yaml", "run: make install PYTHON=python", "run: ls $HOME/*", "SC2086"),
    "reusable workflow input that does not exist": (
        "image.yaml",
        "      mode: ${{ vars.GHOSTPAY_GITOPS_MODE || 'pull-request' }}",
        "      strategy: blue-green",
        'input "strategy" is not defined',
    ),
    "permission that does not exist": ("image.yaml", "packages: write", "package: write", "unknown permission scope"),
}


@pytest.mark.parametrize("mistake", sorted(BROKEN))
def test_actionlint_reports_a_broken_workflow(actionlint: Actionlint, tmp_path: Path, mistake: str) -> None:
    name, old, new, expected = BROKEN[mistake]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # actionlint looks for the repository root
    shutil.copytree(WORKFLOWS, tmp_path / ".github" / "workflows")
    path = tmp_path / ".github" / "workflows" / name
    text = path.read_text()
    assert old in text, f"{name} no longer has {old!r}: update this test"
    path.write_text(text.replace(old, new, 1))
    result = actionlint.run(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout, result.stdout


def test_every_action_is_pinned_by_commit_sha() -> None:
    """A tag can be moved to other code (as happened to tj-actions/changed-files); a commit cannot. The comment
    names the release, so a person (or Dependabot) can read and update it."""
    for path in sorted(WORKFLOWS.glob("*.yaml")):
        for line in path.read_text().splitlines():
            match = re.match(r"\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if match is None or match.group(1).startswith("./"):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", match.group(1)), f"{path.name}: {line.strip()}"
            assert re.fullmatch(r"\s*# v\d+\.\d+\.\d+", match.group(2)), f"{path.name}: no release comment: {line}"


def test_image_is_built_from_the_containerfile_with_sbom_and_provenance() -> None:
    workflow = _load("image.yaml")
    steps = _steps(workflow)
    (build,) = [step for step in steps if step.get("uses", "").startswith("docker/build-push-action@")]
    options = build["with"]
    assert options["sbom"] is True
    assert options["provenance"] == "mode=max"
    assert options["file"] == "Containerfile"
    # The local directory, where the wheelhouse was made; the default Git context would not have it.
    assert options["context"] == "."
    assert "BASE=${{ env.BASE }}" in options["build-args"]
    assert options["push"] == "${{ github.event_name != 'pull_request' }}"
    # The Containerfile copies build/image/ (requirements.txt, wheels/): made by the same script as `make image`.
    wheels = [step for step in steps if "tools/image/build.sh --wheels-only" in step.get("run", "")]
    assert wheels and steps.index(wheels[0]) < steps.index(build)
    containerfile = (REPO_ROOT / "Containerfile").read_text()
    assert "COPY build/image/requirements.txt build/image/wheels/ /wheels/" in containerfile
    # Pushing and attesting need these; nothing else is granted.
    assert workflow["jobs"]["image"]["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
        "attestations": "write",
    }
    assert workflow["permissions"] == {"contents": "read"}


def test_release_inputs_are_repo_path_and_version() -> None:
    triggers = _load("release.yaml")[True]  # PyYAML reads the key `on` as True
    for trigger in ("workflow_dispatch", "workflow_call"):
        inputs = triggers[trigger]["inputs"]
        assert {"repo", "path", "version"} <= set(inputs), trigger
        assert all(inputs[name]["required"] for name in ("repo", "path", "version"))
