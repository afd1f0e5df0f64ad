"""The operator's door to the API server, against a real one: which refusals mean "this namespace is going"."""

from __future__ import annotations

import json

import pytest
from lightkube import ApiError, AsyncClient, KubeConfig

from ghostpay_devtools import localcluster
from ghostpay_operator.builders import meta
from ghostpay_operator.kube import Kube, namespace_terminating
from tests.operator.support.kube_helpers import get_json, wait_for

pytestmark = pytest.mark.slow
HOLD = "ghostpay.io/test-hold"


def _config_map(namespace: str, name: str, finalizers: list[str] | None = None) -> dict[str, object]:
    metadata = {"name": name, "namespace": namespace, "finalizers": finalizers or []}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"a": "b"}}


async def test_a_refusal_in_a_namespace_being_deleted_is_told_apart_from_others(
    cluster: localcluster.Cluster, namespace: str
) -> None:
    client = AsyncClient(config=KubeConfig.from_file(cluster.kubeconfig), field_manager=meta.FIELD_MANAGER)
    try:
        await _check_refusals(cluster, namespace, Kube(client))
    finally:
        await client.close()


async def _check_refusals(cluster: localcluster.Cluster, namespace: str, kube: Kube) -> None:
    await kube.apply(_config_map(namespace, "held", [HOLD]))  # keeps the namespace in Terminating
    with pytest.raises(ApiError) as invalid:  # a refusal of another kind
        await kube.apply(_config_map(namespace, "Not_A_Name"))
    assert not namespace_terminating(invalid.value)

    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    wait_for(
        lambda: (get_json(cluster, "namespace", namespace) or {}).get("status", {}).get("phase") == "Terminating",
        30,
        "the namespace to be terminating",
    )
    try:
        with pytest.raises(ApiError) as refused:
            await kube.apply(_config_map(namespace, "new"))
        assert refused.value.status.code == 403
        assert namespace_terminating(refused.value)
    finally:
        release = json.dumps({"metadata": {"finalizers": None}})
        cluster.kubectl("patch", "configmap", "held", "-n", namespace, "--type=merge", "-p", release, check=False)
