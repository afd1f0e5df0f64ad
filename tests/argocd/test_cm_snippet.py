"""The argocd-cm snippet (argocd/argocd-cm.yaml) is what `make argocd-cm` generates from the customization
directory, carries the same Lua, and its ignoreDifferences removes from ArgoCD's diff exactly the fields the
operator writes (checked with jq, the language of argo-cd's jqPathExpressions)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from ghostpay_devtools import argocd
from tests.argocd.lua import CUSTOMIZATION, ROOT, run

SNIPPET = yaml.safe_load((ROOT / argocd.SNIPPET).read_text())
DATA = SNIPPET["data"]
KEY = "ghostpay.io_GhostPayInstance"
IGNORE = yaml.safe_load(DATA[f"resource.customizations.ignoreDifferences.{KEY}"])


def test_the_committed_snippet_is_the_generated_one() -> None:
    """If this fails, run `make argocd-cm` and commit argocd/argocd-cm.yaml."""
    assert (ROOT / argocd.SNIPPET).read_text() == argocd.render(ROOT)


def test_the_snippet_carries_the_directory_s_lua_in_argo_cd_s_keys(tmp_path: Any) -> None:
    assert set(DATA) == {f"resource.customizations.{kind}.{KEY}" for kind in ("health", "actions", "ignoreDifferences")}
    assert DATA[f"resource.customizations.health.{KEY}"] == (CUSTOMIZATION / "health.lua").read_text()
    actions = yaml.safe_load(DATA[f"resource.customizations.actions.{KEY}"])
    assert actions["discovery.lua"] == (CUSTOMIZATION / "actions/discovery.lua").read_text()
    for definition in actions["definitions"]:
        assert definition["action.lua"] == (CUSTOMIZATION / "actions" / definition["name"] / "action.lua").read_text()
    # ...and the snippet's own copy judges as the directory's does.
    script = tmp_path / "health.lua"
    script.write_text(DATA[f"resource.customizations.health.{KEY}"])
    paused = yaml.safe_load((CUSTOMIZATION / "testdata/paused_for_promotion.yaml").read_text())
    assert run(script, paused)["status"] == "Suspended"


def _live() -> dict[str, Any]:
    """An instance as the cluster holds it: Git's annotation, plus what the operator and kopf added."""
    return {
        "metadata": {
            "name": "payments",
            "finalizers": ["example.com/keep", "ghostpay.io/operator"],
            "annotations": {
                "team": "payments",
                "ghostpay.io/promote": "true",
                "ghostpay.io/abort": "true",
                "ghostpay.io/rotate-keys": "true",
                "kopf.zalando.org/resync": "{}",
                "kopf.zalando.org/last-handled-configuration": "{}",
            },
        },
        "spec": {"version": "0.2.0"},
    }


def _pointer_path(pointer: str) -> str:
    """A JSON pointer as a jq path (RFC 6901 unescaping)."""
    parts = [part.replace("~1", "/").replace("~0", "~") for part in pointer.strip("/").split("/")]
    return "." + "".join(f"[{json.dumps(part)}]" for part in parts)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_ignore_differences_hides_what_the_operator_writes_and_nothing_of_git_s() -> None:
    paths = [_pointer_path(p) for p in IGNORE["jsonPointers"]] + IGNORE["jqPathExpressions"]
    program = "del(" + ", ".join(f"({path})" for path in paths) + ")"
    result = subprocess.run(
        ["jq", "-c", program], input=json.dumps(_live()), capture_output=True, text=True, check=True, timeout=30
    )
    assert json.loads(result.stdout) == {
        "metadata": {"name": "payments", "finalizers": ["example.com/keep"], "annotations": {"team": "payments"}},
        "spec": {"version": "0.2.0"},
    }
