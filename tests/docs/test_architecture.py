"""The Mermaid diagrams of docs/architecture.md match the code: every file a diagram names exists; each diagram
marked `%% layers: <contract>` lists, in order, exactly the layers of that import-linter contract in pyproject.toml
(which `lint-imports` enforces on the code); the release diagram's states are the reasons release.py writes."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.docs.shell_blocks import REPO_ROOT

ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
# Where a path in a diagram may be relative to: the packages' roots, and the repository.
ROOTS = [REPO_ROOT / "services" / "ghostpay", REPO_ROOT / "operator", REPO_ROOT / "devtools", REPO_ROOT]


def _diagrams() -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```", ARCHITECTURE.read_text(), flags=re.MULTILINE | re.DOTALL)


def _contracts() -> dict[str, list[str]]:
    contracts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return {contract["name"]: contract["layers"] for contract in contracts if contract["type"] == "layers"}


def test_there_are_diagrams() -> None:
    diagrams = _diagrams()
    assert len(diagrams) >= 6
    assert any(diagram.lstrip().startswith("sequenceDiagram") for diagram in diagrams)
    assert any(diagram.lstrip().startswith("stateDiagram") for diagram in diagrams)


def test_every_file_named_exists() -> None:
    named = {path for diagram in _diagrams() for path in re.findall(r"[\w./-]+\.(?:py|lua|sql|yaml)\b", diagram)}
    assert len(named) >= 20
    missing = sorted(path for path in named if not any((root / path).is_file() for root in ROOTS))
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def _layers_of(diagram: str) -> str:
    """The contract a diagram draws, from its `%% layers: NAME` comment ("" when it has none)."""
    match = re.search(r"%% layers: (.*)", diagram)
    return match.group(1).strip() if match else ""


@pytest.mark.parametrize("diagram", [d for d in _diagrams() if _layers_of(d)], ids=_layers_of)
def test_layer_diagrams_are_the_import_contracts(diagram: str) -> None:
    contract = _contracts()[_layers_of(diagram)]
    prefix = re.compile(r"\b(?:ghostpay_operator|ghostpay)\.")
    expected = [" | ".join(part.strip() for part in prefix.sub("", layer).split("|")) for layer in contract]
    drawn: list[str] = []
    for label in re.findall(r'\b\w+\["([^"]+)"\]', diagram):
        if label not in drawn:
            drawn.append(label)
    assert drawn == expected


def test_release_states_are_the_operators_reasons() -> None:
    (states,) = [diagram for diagram in _diagrams() if diagram.lstrip().startswith("stateDiagram")]
    names = set(re.findall(r"^\s*(\w+) -->", states, flags=re.MULTILINE)) - {"Stable"}
    code = (REPO_ROOT / "operator" / "ghostpay_operator" / "release.py").read_text()
    code += (REPO_ROOT / "operator" / "ghostpay_operator" / "vocabulary.py").read_text()
    unknown = sorted(name for name in names if f'"{name}"' not in code)
    assert not unknown, f"release states in the diagram that release.py never reports: {unknown}"
    reasons = set(re.findall(r"\[(\w+)(?: / (\w+))?\]", states))
    for pair in reasons:
        for reason in filter(None, pair):
            assert f'"{reason}"' in code, reason
