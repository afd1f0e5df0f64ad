"""The Prometheus rules in monitoring/prometheus/: `promtool check rules` and `promtool test rules` pass (promtool
from Debian's `prometheus` package, installed by tools/prometheus/install.sh when missing), every alert has a unit
test where it fires and one where it stays quiet, and every alert links its own section of docs/runbooks.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.support.prometheus import prometheus_binary

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES = REPO_ROOT / "monitoring" / "prometheus" / "rules.yaml"
TESTS_DIR = REPO_ROOT / "monitoring" / "prometheus" / "tests"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"


def _alerts() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def _test_files() -> list[Path]:
    return sorted(TESTS_DIR.glob("*.yaml"))


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.fixture(scope="session")
def promtool() -> str:
    return prometheus_binary("promtool")


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"


def test_promtool_check_rules(promtool: str) -> None:
    _run([promtool, "check", "rules", str(RULES)])


def test_promtool_unit_tests(promtool: str) -> None:
    files = _test_files()
    assert files, f"no promtool tests in {TESTS_DIR}"
    _run([promtool, "test", "rules", *map(str, files)])


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in _test_files():
        document = yaml.safe_load(path.read_text())
        rule_files = {(path.parent / f).resolve() for f in document["rule_files"]}
        assert rule_files == {RULES}, f"{path.name} tests {rule_files}, not {RULES}"
        for case in document["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert not alerts - firing, f"alerts never tested firing: {sorted(alerts - firing)}"
    assert not alerts - quiet, f"alerts never tested quiet: {sorted(alerts - quiet)}"
    assert not (firing | quiet) - alerts, f"tests of alerts that do not exist: {sorted((firing | quiet) - alerts)}"


def test_every_alert_links_its_runbook_section() -> None:
    anchors = _anchors(RUNBOOKS.read_text())
    for name, rule in _alerts().items():
        url = rule.get("annotations", {}).get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert url == f"docs/runbooks.md#{name.lower()}", f"{name}: runbook_url {url!r}"
        assert (REPO_ROOT / path).resolve() == RUNBOOKS
        assert anchor in anchors, f"{name}: no section #{anchor} in {RUNBOOKS.name}"
        assert rule.get("labels", {}).get("severity") in {"page", "ticket", "warning"}, f"{name}: severity"
