"""Test-only versions of the image, made inside the kind nodes from the image they already hold.

A version differs from the base image only in its configuration (a healthy one: not at all, just another tag; a
broken one: a test-only fault in its environment), so its layers are the base's, which `ghostpay cluster up`
has already loaded into every node. `kind load` would send the whole image again (270 MB per node, minutes on a
busy machine); here each node gets one small OCI archive instead — each version's configuration and manifest, the
manifest naming the base's layers by digest — imported by the node's own containerd (`ctr images import`, as
kind itself does), which finds those layers in its content store.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass

_CTR = ("ctr", "--namespace=k8s.io")  # the namespace the kubelet's CRI reads images from
_OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Image:
    """An image as a node's containerd holds it: its manifest and its configuration, byte for byte."""

    manifest: bytes
    config: bytes

    @property
    def config_digest(self) -> str:
        return str(json.loads(self.manifest)["config"]["digest"])


def with_env(image: Image, env: dict[str, str]) -> Image:
    """The same layers with `env` set in the configuration (a variable already there takes the new value)."""
    config = json.loads(image.config)
    kept = [e for e in config["config"].get("Env") or [] if e.split("=", 1)[0] not in env]
    config["config"]["Env"] = [*kept, *(f"{key}={value}" for key, value in env.items())]
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    manifest = json.loads(image.manifest)
    manifest["config"] = {**manifest["config"], "digest": _digest(config_bytes), "size": len(config_bytes)}
    return Image(json.dumps(manifest, separators=(",", ":")).encode(), config_bytes)


def archive(images: dict[str, Image]) -> bytes:
    """An OCI layout tar naming each image by its reference (`docker.io/…:tag`): manifests and configurations only."""
    blobs: dict[str, bytes] = {}
    manifests = []
    for reference, image in images.items():
        blobs[_digest(image.config)] = image.config
        blobs[_digest(image.manifest)] = image.manifest
        manifests.append(
            {
                "mediaType": json.loads(image.manifest)["mediaType"],
                "digest": _digest(image.manifest),
                "size": len(image.manifest),
                "annotations": {"io.containerd.image.name": reference},
            }
        )
    index = {"schemaVersion": 2, "mediaType": _OCI_INDEX, "manifests": manifests}
    files = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": json.dumps(index).encode(),
        **{f"blobs/sha256/{digest.removeprefix('sha256:')}": data for digest, data in blobs.items()},
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def held(node: str, reference: str) -> Image:
    """The image `reference` (`docker.io/…:tag`) as the node's containerd holds it."""
    listed = _ctr(node, "images", "list", f"name=={reference}").decode().splitlines()[1:]
    assert listed, f"{node} holds no {reference}"
    manifest = _ctr(node, "content", "get", listed[0].split()[2])  # columns: REF TYPE DIGEST SIZE ...
    return Image(manifest, _ctr(node, "content", "get", json.loads(manifest)["config"]["digest"]))


def import_images(node: str, images: dict[str, Image]) -> None:
    """Imports the images into the node; its containerd must hold their layers already."""
    _ctr(node, "images", "import", "--all-platforms", "--snapshotter=overlayfs", "-", input=archive(images))


def _ctr(node: str, *args: str, input: bytes | None = None) -> bytes:
    command = ["docker", "exec", "-i", node, *_CTR, *args]
    done = subprocess.run(command, input=input, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr.decode()}"
    return done.stdout


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
