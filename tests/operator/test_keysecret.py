"""The key Secrets: made by the operator (a passphrase, and a key store encrypted with it), and rotated by
keysecret.rotate_secret against a real API server: a key store in a Secret gains a signing key version, and a
Secret changed during the rotation is not overwritten."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig

from ghostpay.core.keys.local import KeyStoreError, LocalKeyStore
from ghostpay_operator import keysecret, localcluster
from ghostpay_operator import spec as specs
from tests.operator.kube_helpers import get_json
from tests.operator.samples import body

PASSPHRASE = "correct horse battery staple"


def _client(cluster: localcluster.Cluster) -> Client:
    return Client(config=KubeConfig.from_file(cluster.kubeconfig), field_manager=keysecret.FIELD_MANAGER)


def _create_store_secret(cluster: localcluster.Cluster, namespace: str, folder: Path) -> dict[str, bytes]:
    files = LocalKeyStore(folder / "keys", PASSPHRASE).open().files()
    data = {name: base64.b64encode(content).decode() for name, content in files.items()}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "payments-keys"}, "data": data}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(secret))
    return files


def _secret_files(cluster: localcluster.Cluster, namespace: str) -> dict[str, bytes]:
    secret = get_json(cluster, "secret", "payments-keys", "-n", namespace)
    return {name: base64.b64decode(value) for name, value in secret["data"].items()}


def _kids(files: dict[str, bytes], folder: Path, passphrase: str = PASSPHRASE) -> list[str]:
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return [key.kid for key in LocalKeyStore(folder, passphrase).open().public_keys()]


def test_the_operator_makes_a_random_passphrase_and_a_key_store_only_it_opens(tmp_path: Path) -> None:
    spec = specs.parse(body())
    first, second = keysecret.passphrase_secret(spec), keysecret.passphrase_secret(spec)
    assert first["metadata"]["name"] == "payments-keys-passphrase" and list(first["data"]) == ["passphrase"]
    passphrase = keysecret.passphrase_of(first)
    assert passphrase is not None and len(passphrase) >= 40 and passphrase != keysecret.passphrase_of(second)
    assert keysecret.passphrase_of(None) is None
    store = keysecret.keys_secret(spec, passphrase)
    assert store["metadata"]["name"] == "payments-keys"
    assert store["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    files = {name: base64.b64decode(value) for name, value in store["data"].items()}
    assert len(_kids(files, tmp_path / "opened", passphrase)) == 1
    with pytest.raises(KeyStoreError):
        _kids(files, tmp_path / "wrong", "another passphrase")


@pytest.mark.slow
def test_rotating_the_secret_adds_a_signing_key(cluster: localcluster.Cluster, namespace: str, tmp_path: Path) -> None:
    before = _create_store_secret(cluster, namespace, tmp_path)
    keysecret.rotate_secret(namespace, "payments-keys", 3600.0, PASSPHRASE, 0.0, client=_client(cluster))
    after = _secret_files(cluster, namespace)
    old_kids, new_kids = _kids(before, tmp_path / "before"), _kids(after, tmp_path / "after")
    assert len(new_kids) == len(old_kids) + 1 and set(old_kids) < set(new_kids)
    assert not any(name.startswith(".") for name in after)  # no lock file or temporary made it into the Secret


@pytest.mark.slow
def test_a_retired_key_leaves_the_secret(cluster: localcluster.Cluster, namespace: str, tmp_path: Path) -> None:
    before = _create_store_secret(cluster, namespace, tmp_path)
    client = _client(cluster)
    keysecret.rotate_secret(namespace, "payments-keys", 0.0, PASSPHRASE, 0.0, client=client)
    keysecret.rotate_secret(namespace, "payments-keys", 0.0, PASSPHRASE, 0.0, client=client)
    after = _secret_files(cluster, namespace)
    first = _kids(before, tmp_path / "before")[0]
    assert first not in _kids(after, tmp_path / "after")
    assert not any(first in name for name in after)  # its files were deleted from the Secret, not just left


@pytest.mark.slow
def test_a_secret_changed_during_the_rotation_is_not_overwritten(
    cluster: localcluster.Cluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create_store_secret(cluster, namespace, tmp_path)
    rotate = keysecret.rotate_directory

    def concurrent_writer(*args: Any) -> LocalKeyStore:
        rotated = rotate(*args)  # meanwhile someone else changes the Secret: our resourceVersion is now stale
        patch = {"data": {"marker": base64.b64encode(b"theirs").decode()}}
        cluster.kubectl("patch", "secret", "payments-keys", "-n", namespace, "--type=merge", "-p", json.dumps(patch))
        return rotated

    monkeypatch.setattr(keysecret, "rotate_directory", concurrent_writer)
    with pytest.raises(keysecret.KeySecretError) as refused:
        keysecret.rotate_secret(namespace, "payments-keys", 3600.0, PASSPHRASE, 0.0, client=_client(cluster))
    assert refused.value.conflict
    after = _secret_files(cluster, namespace)
    assert after["marker"] == b"theirs"
    assert len(_kids(after, tmp_path / "after")) == 1  # the rotation was not written


@pytest.mark.slow
def test_a_missing_secret_is_a_one_line_error(cluster: localcluster.Cluster, namespace: str) -> None:
    with pytest.raises(keysecret.KeySecretError, match=f"Cannot read Secret {namespace}/nope"):
        keysecret.rotate_secret(namespace, "nope", 3600.0, PASSPHRASE, 0.0, client=_client(cluster))
