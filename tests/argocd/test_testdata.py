"""Every object in the ArgoCD customization's testdata is a GhostPayInstance as the CRD
(crds/ghostpayinstances.ghostpay.io.yaml) defines it — its group, version and kind, its required fields, types
and enums, no field the schema does not declare — and its `status.release` holds only the fields of the operator's
release record, so the health check and actions are tested on shapes the operator really writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ghostpay_operator.releaseplan import Release
from ghostpay_operator.vocabulary import Phase
from tests.argocd.lua import CUSTOMIZATION, ROOT

CRD = yaml.safe_load((ROOT / "crds/ghostpayinstances.ghostpay.io.yaml").read_text())
[VERSION] = CRD["spec"]["versions"]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
TESTDATA = sorted((CUSTOMIZATION / "testdata").glob("*.yaml")) + sorted(
    (CUSTOMIZATION / "actions/testdata").glob("*.yaml")
)
TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}


def problems(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Where `value` breaks `schema` (the subset of OpenAPI v3 the CRD uses), as paths with a reason."""
    expected = schema.get("type")
    if (expected and not isinstance(value, TYPES[expected])) or (expected == "integer" and isinstance(value, bool)):
        return [f"{path}: not {expected}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} not in {schema['enum']}"]
    found = []
    if isinstance(value, dict) and "properties" in schema:
        found += [f"{path}.{key}: required" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in schema["properties"]:
                found += problems(item, schema["properties"][key], f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields") and path != "":
                found.append(f"{path}.{key}: not in the schema (the API server would prune it)")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(item, schema["items"], f"{path}[{index}]")
    return found


@pytest.mark.parametrize("path", TESTDATA, ids=[str(p.relative_to(CUSTOMIZATION)) for p in TESTDATA])
def test_testdata_is_a_ghostpay_instance_the_crd_accepts(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    assert obj["apiVersion"] == f"{CRD['spec']['group']}/{VERSION['name']}"
    assert obj["kind"] == CRD["spec"]["names"]["kind"]
    assert problems(obj, SCHEMA, "") == []


@pytest.mark.parametrize("path", TESTDATA, ids=[str(p.relative_to(CUSTOMIZATION)) for p in TESTDATA])
def test_testdata_status_has_only_what_the_operator_writes(path: Path) -> None:
    status = yaml.safe_load(path.read_text()).get("status", {})
    declared = set(SCHEMA["properties"]["status"]["properties"])
    assert set(status) - declared <= {"release"}  # release: kept through x-kubernetes-preserve-unknown-fields
    assert set(status.get("release", {})) <= set(Release.__dataclass_fields__)  # snake_case, as to_status writes
    assert status.get("phase", "Healthy") in Phase.__args__


def test_the_checker_finds_a_field_the_crd_does_not_declare() -> None:
    obj = yaml.safe_load((CUSTOMIZATION / "testdata/healthy.yaml").read_text())
    obj["spec"]["replicas"] = 3
    obj["status"]["conditions"][0]["status"] = "Yes"
    assert problems(obj, SCHEMA, "") == [
        ".spec.replicas: not in the schema (the API server would prune it)",
        ".status.conditions[0].status: 'Yes' not in ['True', 'False', 'Unknown']",
    ]
