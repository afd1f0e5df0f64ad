"""What `ghostpay cluster up --kind` hands to kind and to each node, without a cluster (contract §4's layout)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from ghostpay import cli
from ghostpay_devtools import kindcluster, kindnetwork, localcluster


def test_the_cluster_has_a_control_plane_with_the_node_ports_and_two_workers_per_zone() -> None:
    config = kindcluster.cluster_config(own_image=None)
    nodes = config["nodes"]
    assert isinstance(nodes, list)
    assert [node["role"] for node in nodes] == ["control-plane", "worker", "worker", "worker", "worker"]
    mappings = nodes[0]["extraPortMappings"]
    assert [(m["containerPort"], m["hostPort"], m["listenAddress"]) for m in mappings] == [
        (port, port, "127.0.0.1") for port in (30080, 30081, 30082, 30083)
    ]
    zones = [node["labels"]["topology.kubernetes.io/zone"] for node in nodes[1:]]
    assert zones == ["zone-a", "zone-a", "zone-b", "zone-b"]  # a drained worker leaves one in its zone
    # On kindest/node, kind's own CNI and kubeadm settings stay.
    assert "networking" not in config
    assert "kubeadmConfigPatches" not in config


def test_each_node_bridges_its_own_pod_cidr() -> None:
    config = json.loads(kindnetwork.bridge_config("10.244.1.0/24"))
    bridge, portmap = config["plugins"]
    assert bridge["type"] == "bridge"
    assert bridge["isGateway"] is True
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]
    assert portmap["type"] == "portmap"


def test_the_ghostpay_image_is_named_after_the_package_version() -> None:
    import importlib.metadata

    assert kindcluster.ghostpay_image() == f"ghostpay/ghostpay:{importlib.metadata.version('ghostpay')}"


@pytest.mark.parametrize(
    ("flags", "module", "expected"),
    [(["--kind"], kindcluster, Path(".ghostpay/kind")), ([], localcluster, Path(".ghostpay/cluster"))],
)
def test_cluster_up_and_down_default_their_directory_by_kind(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], module: object, expected: Path
) -> None:
    seen: list[Path] = []

    def record(directory: Path) -> object:
        seen.append(directory)
        return SimpleNamespace(kubeconfig=directory / "kubeconfig")

    monkeypatch.setattr(module, "up", record)
    monkeypatch.setattr(module, "down", record)
    for command in ("up", "down"):
        result = CliRunner().invoke(cli.main, ["cluster", command, *flags])
        assert result.exit_code == 0, result.output
    assert seen == [expected, expected]
