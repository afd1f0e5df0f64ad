"""The ArgoCD health check and actions for GhostPayInstance (argocd/resource_customizations/ghostpay.io/
GhostPayInstance), run with Lua against every case of their health_test.yaml and action_test.yaml, in argo-cd's own
format, as argo-cd's lua_test.go runs the customizations it ships; and against statuses the operator's own pure
code computes, so the Lua and the operator agree on the words it looks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ghostpay_operator import release as rel
from ghostpay_operator import spec as specs
from ghostpay_operator import status as st
from tests.argocd.lua import CUSTOMIZATION, RUNTIME, run
from tests.operator.support.samples import body

ACTIONS = CUSTOMIZATION / "actions"
HEALTH_TESTS = yaml.safe_load((CUSTOMIZATION / "health_test.yaml").read_text())["tests"]
ACTION_TESTS = yaml.safe_load((ACTIONS / "action_test.yaml").read_text())


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def health(obj: dict[str, Any]) -> dict[str, str]:
    result: dict[str, str] = run(CUSTOMIZATION / "health.lua", obj)
    return result


def test_the_lua_runs_as_lua_5_1() -> None:
    """argo-cd's gopher-lua is Lua 5.1: 5.4-only syntax (//, goto, integer division) must fail here too."""
    assert RUNTIME.LuaRuntime().lua_implementation == "Lua 5.1"
    with pytest.raises(RUNTIME.LuaSyntaxError):
        RUNTIME.LuaRuntime().execute("return 7 // 2")


@pytest.mark.parametrize("case", HEALTH_TESTS, ids=[c["inputPath"] for c in HEALTH_TESTS])
def test_health(case: dict[str, Any]) -> None:
    assert health(_load(CUSTOMIZATION / case["inputPath"])) == case["healthStatus"]


@pytest.mark.parametrize(
    "case", ACTION_TESTS["discoveryTests"], ids=[c["inputPath"] for c in ACTION_TESTS["discoveryTests"]]
)
def test_discovery(case: dict[str, Any]) -> None:
    found = run(ACTIONS / "discovery.lua", _load(ACTIONS / case["inputPath"]))
    assert {name: action["disabled"] for name, action in found.items()} == {
        item["name"]: item["disabled"] for item in case["result"]
    }
    for item in case["result"]:  # like argo-cd's, a case's displayName is checked where it gives one
        assert found[item["name"]].get("displayName") == item.get("displayName", found[item["name"]].get("displayName"))


@pytest.mark.parametrize(
    "case",
    ACTION_TESTS["actionTests"],
    ids=[f"{c['action']}:{c['inputPath']}" for c in ACTION_TESTS["actionTests"]],
)
def test_action(case: dict[str, Any]) -> None:
    result = run(ACTIONS / case["action"] / "action.lua", _load(ACTIONS / case["inputPath"]))
    assert result == _load(ACTIONS / case["expectedOutputPath"])


def test_every_action_is_discovered_and_tested() -> None:
    on_disk = {p.parent.name for p in ACTIONS.glob("*/action.lua")}
    assert on_disk == {"promote", "abort", "rotate-keys"}
    for case in ACTION_TESTS["discoveryTests"]:
        assert {item["name"] for item in case["result"]} == on_disk
    assert {case["action"] for case in ACTION_TESTS["actionTests"]} == on_disk


def test_every_testdata_file_is_a_case() -> None:
    """No testdata file sits unused: each is the input or the expected output of some case."""
    used = {c["inputPath"] for c in HEALTH_TESTS}
    assert {f"testdata/{p.name}" for p in (CUSTOMIZATION / "testdata").glob("*.yaml")} == used
    cases = ACTION_TESTS["discoveryTests"] + ACTION_TESTS["actionTests"]
    used = {c["inputPath"] for c in cases} | {c["expectedOutputPath"] for c in ACTION_TESTS["actionTests"]}
    assert {f"testdata/{p.name}" for p in (ACTIONS / "testdata").glob("*.yaml")} == used


def test_the_actions_change_nothing_but_one_annotation() -> None:
    """ArgoCD never sees spec drift from an action: only metadata.annotations differs."""
    for case in ACTION_TESTS["actionTests"]:
        before, after = _load(ACTIONS / case["inputPath"]), _load(ACTIONS / case["expectedOutputPath"])
        added = set(after["metadata"].pop("annotations")) - set(before["metadata"].pop("annotations", {}))
        assert added == {f"ghostpay.io/{case['action']}"}
        assert before == after


# --- the operator's own statuses --------------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OLD, NEW = "hash-old", "hash-new"


def _instance(release: dict[str, Any], plan: rel.Plan, facts: st.StatusFacts) -> dict[str, Any]:
    """An instance of generation 3 whose status the operator's pure code computed from `plan`."""
    instance = body(version="2.0.0", release=release)
    spec = specs.parse(instance)
    instance["status"] = st.compute_status(spec, facts, {"activeVersion": "1.0.0"}, T0, plan)
    return instance


def _plan(release: dict[str, Any], green_ready: bool, **facts: Any) -> rel.Plan:
    spec = specs.parse(body(version="2.0.0", release=release))
    colors = {
        "blue": rel.ColorState(OLD, "1.0.0", True),
        "green": rel.ColorState(NEW, "2.0.0", green_ready),
    }
    started = rel.Release(NEW, "2.0.0", "green", "2026-01-01T00:00:00Z", step_started_at="2026-01-01T00:00:00Z")
    return rel.decide(spec, NEW, "blue", started, rel.ReleaseFacts(colors, **facts), T0 + timedelta(seconds=10))


def _serving(version: str) -> st.StatusFacts:
    states = {name: st.DeploymentState(version, 2, 2, 2, True) for name in ("auth", "cards", "charges", "analytics")}
    return st.StatusFacts(migration="succeeded", deployments=states, active_version="1.0.0")


def test_a_release_the_operator_pauses_for_promotion_is_suspended_and_promotable() -> None:
    release = {"autoPromotion": False}
    paused = _instance(release, _plan(release, green_ready=True), _serving("1.0.0"))
    assert health(paused)["status"] == "Suspended"
    actions = run(ACTIONS / "discovery.lua", paused)
    assert (actions["promote"]["disabled"], actions["abort"]["disabled"]) == (False, False)


def test_a_release_the_operator_rolls_out_is_progressing_and_abortable_not_promotable() -> None:
    release = {"autoPromotion": True}
    waiting = _instance(release, _plan(release, green_ready=False), _serving("1.0.0"))
    assert health(waiting)["status"] == "Progressing"
    actions = run(ACTIONS / "discovery.lua", waiting)
    assert (actions["promote"]["disabled"], actions["abort"]["disabled"]) == (True, False)


def test_a_release_the_operator_rolled_back_is_degraded_and_not_abortable() -> None:
    aborted = _instance({}, _plan({}, green_ready=True, abort=True), _serving("1.0.0"))
    assert aborted["status"]["phase"] == "RolledBack"
    assert health(aborted)["status"] == "Degraded"
    assert "Aborted" in health(aborted)["message"]
    assert run(ACTIONS / "discovery.lua", aborted)["abort"]["disabled"] is True


def test_an_instance_the_operator_finds_healthy_is_healthy() -> None:
    healthy = _instance({}, rel.steady("blue", "stable"), _serving("2.0.0"))
    assert health(healthy) == {
        "status": "Healthy",
        "message": "Healthy: AllReplicasReady: Version 2.0.0 is running with all replicas ready.",
    }


def test_a_status_of_an_older_generation_is_progressing_whatever_it_says() -> None:
    healthy = _instance({}, rel.steady("blue", "stable"), _serving("2.0.0"))
    healthy["metadata"]["generation"] = 4
    assert health(healthy)["status"] == "Progressing"


def test_a_blue_green_release_the_operator_switched_says_when() -> None:
    release = {"autoPromotion": True}
    switched = _instance(release, _plan(release, green_ready=True), _serving("2.0.0"))
    assert switched["status"]["release"]["switched_at"] == "2026-01-01T00:00:10Z"
    assert health(switched) == {
        "status": "Progressing",
        "message": "Progressing: Switched: Traffic switched to 2.0.0 on green. "
        "(release of 2.0.0 on green, traffic switched at 2026-01-01T00:00:10Z)",
    }
