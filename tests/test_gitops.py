"""The release workflow's version bump (ghostpay_devtools.gitops): only the characters of spec.version change in a
GitOps file, a version the CRD would refuse is refused here first, and the workflow's own shell steps — set the
version, then push, or open a pull request — run as written against a local GitOps repository (a bare git
repository standing in for GitHub, and a stand-in `gh` that records the pull request it was asked to open)."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ghostpay_devtools import gitops

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE = REPO_ROOT / ".github" / "workflows" / "release.yaml"

MULTI = """\
# The shop's instances. Comments stay.
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: ghostpay.io/v1alpha1
kind: GhostPayInstance
metadata:
  name: payments   # the EU one
  namespace: shop
spec:
  image: ghcr.io/acme/ghostpay
  version: 1.10  # a plain scalar that YAML reads as a number
  release: {strategy: Canary, canarySteps: [25, 100]}
---
apiVersion: ghostpay.io/v1alpha1
kind: GhostPayInstance
metadata: {name: payments-us, namespace: shop}
spec: {image: ghcr.io/acme/ghostpay, version: '1.10', database: {secretRef: {name: db}}}
"""


def test_only_the_version_changes_in_the_samples() -> None:
    for sample in ("minimal.yaml", "full.yaml"):
        text = (REPO_ROOT / "samples" / sample).read_text()
        bumped = gitops.bump(text, "2.0.0-rc.1")
        assert bumped.text == text.replace('version: "0.1.0"', 'version: "2.0.0-rc.1"', 1)
        assert (bumped.previous, bumped.image) == ("0.1.0", "ghcr.io/ghostpay/ghostpay")


def test_a_file_of_several_documents_keeps_everything_else() -> None:
    eu = gitops.bump(MULTI, "1.11.0", name="payments")
    assert eu.text == MULTI.replace("version: 1.10  #", 'version: "1.11.0"  #')
    assert (eu.name, eu.previous) == ("payments", "1.10")
    us = gitops.bump(MULTI, "1.11.0", name="payments-us")
    assert us.text == MULTI.replace("version: '1.10',", 'version: "1.11.0",')
    documents: list[Any] = list(yaml.safe_load_all(us.text))
    assert documents[2]["spec"]["version"] == "1.11.0"
    assert documents[1]["spec"]["version"] == 1.1  # untouched (and why the bump quotes)


def test_the_same_version_changes_nothing() -> None:
    text = (REPO_ROOT / "samples" / "minimal.yaml").read_text()
    assert gitops.bump(text, "0.1.0").text == text


@pytest.mark.parametrize(
    ("text", "version", "name", "message"),
    [
        (MULTI, "1.11.0", None, "2 of GhostPayInstance in the file (payments, payments-us); choose one with --name"),
        (MULTI, "1.11.0", "nope", "no GhostPayInstance named 'nope' in the file"),
        (MULTI, "1.11 0", "payments", "is not an image tag the CRD accepts"),
        (MULTI, "-rc", "payments", "is not an image tag the CRD accepts"),
        (MULTI, "x" * 129, "payments", "is not an image tag the CRD accepts"),
        ("kind: GhostPayInstance\napiVersion: ghostpay.io/v1alpha1\nmetadata: {name: a}\nspec: {}\n", "1", None,
         "has no spec.version"),
    ],
)
def test_refusals_say_why(text: str, version: str, name: str | None, message: str) -> None:
    with pytest.raises(gitops.BumpError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gitops.bump(text, version, name)


def test_the_version_rule_is_the_crds() -> None:
    crd = yaml.safe_load((REPO_ROOT / "crds" / "ghostpayinstances.ghostpay.io.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["version"]["pattern"] == gitops.VERSION_PATTERN
    assert spec["version"]["maxLength"] == gitops.VERSION_MAX_LENGTH


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def _step(name: str) -> str:
    """The `run:` script of the release workflow's step called `name`."""
    steps = yaml.safe_load(RELEASE.read_text())["jobs"]["bump"]["steps"]
    (step,) = [step for step in steps if step.get("name") == name]
    script: str = step["run"]
    return script


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """What the job's checkouts lay out: this repository at ghostpay/, a clone of the GitOps repository at
    gitops/ (its origin a bare repository holding samples/minimal.yaml at apps/shop/payments.yaml)."""
    origin = tmp_path / "origin.git"
    seed = tmp_path / "seed"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    _git(tmp_path, "init", "-q", "-b", "main", str(seed))
    (seed / "apps" / "shop").mkdir(parents=True)
    (seed / "apps" / "shop" / "payments.yaml").write_text((REPO_ROOT / "samples" / "minimal.yaml").read_text())
    _git(seed, "add", ".")
    _git(seed, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "seed")
    _git(seed, "push", "-q", str(origin), "main")
    work = tmp_path / "work"
    work.mkdir()
    (work / "ghostpay").symlink_to(REPO_ROOT)
    _git(work, "clone", "-q", str(origin), "gitops")
    bin_dir = tmp_path / "bin"  # `python` is this venv's interpreter (PyYAML installed); `gh` records its arguments
    bin_dir.mkdir()
    # A script, not a symlink: run through a link from elsewhere, the interpreter finds no `pyvenv.cfg` beside it and
    # starts as the base interpreter outside the venv (Debian's refuses pip there: PEP 668).
    _script(bin_dir / "python", f'exec {shlex.quote(sys.executable)} "$@"')
    _script(bin_dir / "gh", f'printf "%s\\n" "$@" > {tmp_path}/gh-args\necho https://example.invalid/pr/1')
    return tmp_path


def _script(path: Path, body: str) -> None:
    """An executable shell script at `path` running `body`."""
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _run_step(workspace: Path, name: str, env: dict[str, str], cwd: Path) -> None:
    full_env = {
        **os.environ,
        "PATH": f"{workspace / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(workspace / "output"),
        "GITHUB_STEP_SUMMARY": str(workspace / "summary"),
        "PIP_NO_INDEX": "1",  # PyYAML is installed already: the step's pip must not need the network here
        **env,
    }
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", _step(name)], cwd=cwd, env=full_env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _outputs(workspace: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (workspace / "output").read_text().splitlines())


INPUTS = {"GITOPS_REPO": "acme/gitops", "GITOPS_PATH": "apps/shop/payments.yaml", "VERSION": "0.2.0", "INSTANCE": ""}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["push", "pull-request"])
def test_the_workflow_steps_bump_commit_and_push(workspace: Path, mode: str) -> None:
    work = workspace / "work"
    env = {**INPUTS, "MODE": mode}
    _run_step(workspace, "Set spec.version", env, work)
    outputs = _outputs(workspace)
    assert outputs == {"name": "payments", "image": "ghcr.io/ghostpay/ghostpay", "previous": "0.1.0", "changed": "true"}
    step_env = {**env, "GH_TOKEN": "unused", "PREVIOUS": outputs["previous"], "NAME": outputs["name"],
                "SOURCE": "https://example.invalid/run/1"}
    _run_step(workspace, "Commit, then push or open a pull request", step_env, work / "gitops")
    branch = "main" if mode == "push" else "ghostpay/release-payments-0.2.0"
    origin = workspace / "origin.git"
    pushed = _git(origin, "show", f"{branch}:apps/shop/payments.yaml")
    assert pushed == (REPO_ROOT / "samples" / "minimal.yaml").read_text().replace('"0.1.0"', '"0.2.0"').rstrip("\n")
    subject = _git(origin, "log", "-1", "--format=%s", branch)
    assert subject == "Release GhostPay payments 0.2.0 (from 0.1.0)"
    if mode == "pull-request":
        assert _git(origin, "rev-parse", "main") != _git(origin, "rev-parse", branch)  # main untouched
        args = (workspace / "gh-args").read_text().splitlines()
        assert args[:6] == ["pr", "create", "--repo", "acme/gitops", "--head", branch]
    else:
        assert not (workspace / "gh-args").exists()


@pytest.mark.slow
def test_the_workflow_step_reports_no_change(workspace: Path) -> None:
    _run_step(workspace, "Set spec.version", {**INPUTS, "VERSION": "0.1.0", "MODE": "push"}, workspace / "work")
    assert _outputs(workspace)["changed"] == "false"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("changes", "ok"),
    [
        ({}, True),
        ({"MODE": "force"}, False),
        ({"GITOPS_REPO": "acme/gitops; rm -rf /"}, False),
        ({"GITOPS_PATH": ""}, False),
        ({"GITOPS_PATH": "../../etc/passwd"}, False),
        ({"GITOPS_PATH": "/etc/passwd"}, False),
    ],
)
def test_the_workflow_checks_its_inputs(tmp_path: Path, changes: dict[str, str], ok: bool) -> None:
    env = {**os.environ, **INPUTS, "MODE": "pull-request", **changes}
    result = subprocess.run(["bash", "-e", "-c", _step("Check the inputs")], env=env, capture_output=True, text=True)
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
