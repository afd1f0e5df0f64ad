"""The CRD is the user's manual: every field described, printer columns and names as the contract says."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from tests.operator.support.kube_helpers import REPO

CRD = yaml.safe_load((REPO / "crds" / "ghostpayinstances.ghostpay.io.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]


def _fields(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema under `schema` that `kubectl explain` shows: properties, list items and map values."""
    children = [(f"{path}.{name}", child) for name, child in schema.get("properties", {}).items()]
    if "items" in schema:
        children.append((f"{path}[]", schema["items"]))
    if isinstance(schema.get("additionalProperties"), dict):
        children.append((f"{path}{{}}", schema["additionalProperties"]))
    for child_path, child in children:
        yield child_path, child
        yield from _fields(child, child_path)


def test_every_field_has_a_description() -> None:
    schema = VERSION["schema"]["openAPIV3Schema"]
    undocumented = [path for path, child in _fields(schema, "") if path != ".metadata" and not child.get("description")]
    assert undocumented == []


def test_names_columns_and_subresources_follow_the_contract() -> None:
    names = CRD["spec"]["names"]
    assert (CRD["spec"]["group"], VERSION["name"], names["kind"], names["plural"]) == (
        "ghostpay.io",
        "v1alpha1",
        "GhostPayInstance",
        "ghostpayinstances",
    )
    assert set(names["shortNames"]) == {"ghostpay", "gpi"} and CRD["spec"]["scope"] == "Namespaced"
    assert [c["name"] for c in VERSION["additionalPrinterColumns"]] == ["Version", "Phase", "Ready", "Active", "Age"]
    assert VERSION["subresources"] == {"status": {}}
