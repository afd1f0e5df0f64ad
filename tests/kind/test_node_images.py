"""The test-only versions' archive, without a cluster: the same layers, the environment changed, each blob named by
its digest. (That a node's containerd takes it and a pod runs it broken is the disruption suite's scenario 3.)"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

from tests.kind.node_images import Image, archive, with_env

LAYERS = [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": "sha256:" + "a" * 64, "size": 7}]
CONFIG = json.dumps({"config": {"Env": ["PATH=/usr/bin", "GHOSTPAY_FAULT=none"]}, "rootfs": {}}).encode()
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "x", "size": 1},
        "layers": LAYERS,
    }
).encode()
BASE = Image(MANIFEST, CONFIG)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_with_env_keeps_the_layers_and_sets_the_variables() -> None:
    broken = with_env(BASE, {"GHOSTPAY_FAULT": "never-ready", "GHOSTPAY_ENVIRONMENT": "development"})
    env = json.loads(broken.config)["config"]["Env"]
    assert env == ["PATH=/usr/bin", "GHOSTPAY_FAULT=never-ready", "GHOSTPAY_ENVIRONMENT=development"]
    manifest = json.loads(broken.manifest)
    assert manifest["layers"] == LAYERS
    assert broken.config_digest == _digest(broken.config) == manifest["config"]["digest"]
    assert manifest["config"]["size"] == len(broken.config)


def test_the_archive_names_each_image_and_holds_only_manifests_and_configurations() -> None:
    images = {"docker.io/ghostpay/ghostpay:a": BASE, "docker.io/ghostpay/ghostpay:b": with_env(BASE, {"K": "v"})}
    with tarfile.open(fileobj=io.BytesIO(archive(images))) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    index = json.loads(files["index.json"])
    named = {m["annotations"]["io.containerd.image.name"]: m["digest"] for m in index["manifests"]}
    assert named == {reference: _digest(image.manifest) for reference, image in images.items()}
    blobs = {name for name in files if name.startswith("blobs/")}
    expected = {d for image in images.values() for d in (_digest(image.manifest), _digest(image.config))}
    assert blobs == {f"blobs/sha256/{d.removeprefix('sha256:')}" for d in expected}
    assert all(_digest(files[f"blobs/sha256/{d.removeprefix('sha256:')}"]) == d for d in expected)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
