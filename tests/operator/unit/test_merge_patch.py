"""The status write's merge patch (`kube.merge_patch`): what it must send for the API server to end at the new
status, applied here as RFC 7396 says the API server applies it."""

from __future__ import annotations

from typing import Any

import pytest

from ghostpay_operator.kube import merge_patch


def _apply(target: Any, patch: Any) -> Any:
    """RFC 7396's MergePatch, as the API server applies a merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _apply(result.get(key), value)
    return result


@pytest.mark.parametrize(
    ("previous", "new"),
    [
        ({"phase": "Healthy", "release": {"step": 0}}, {"phase": "Healthy"}),  # a whole field gone
        # The next canary step: its hold has not started yet, so the last step's step_ready_at must go.
        (
            {"release": {"step": 0, "step_started_at": "T0", "step_ready_at": "T1"}, "conditions": [{"type": "A"}]},
            {"release": {"step": 1, "step_started_at": "T2"}, "conditions": []},
        ),
        ({"release": {"step": 1}}, {"release": {"step": 1, "step_ready_at": "T3"}}),
        ({}, {"phase": "Pending", "release": {"step": 0}}),
    ],
)
def test_the_patch_leaves_exactly_the_new_status(previous: dict[str, Any], new: dict[str, Any]) -> None:
    assert _apply(previous, merge_patch(previous, new)) == new


def test_a_nested_key_left_out_is_sent_as_null() -> None:
    previous = {"release": {"step": 0, "step_ready_at": "T1"}}
    assert merge_patch(previous, {"release": {"step": 1}}) == {"release": {"step": 1, "step_ready_at": None}}
