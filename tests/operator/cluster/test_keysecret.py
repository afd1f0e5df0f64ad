"""The key store's Secrets rotated by `keysecret.rotate_secrets` against a real API server: the store gains a
signing key version, and a Secret changed during the rotation is not overwritten. (How they are made:
`unit/test_keystore.py`.)"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig

from ghostpay.core.keys.local import PARTS, LocalKeyStore, split_files
from ghostpay_devtools import localcluster
from ghostpay_operator import keysecret
from tests.operator.support.key_helpers import PART_NAMES, PASSPHRASE, decoded, key_ids
from tests.operator.support.kube_helpers import get_json


def _client(cluster: localcluster.Cluster) -> Client:
    return Client(config=KubeConfig.from_file(cluster.kubeconfig), field_manager=keysecret.FIELD_MANAGER)


def _create_store_secrets(cluster: localcluster.Cluster, namespace: str, folder: Path) -> dict[str, bytes]:
    files = LocalKeyStore(folder / "keys", PASSPHRASE).open().files()
    for part, part_files in split_files(files).items():
        data = {name: base64.b64encode(content).decode() for name, content in part_files.items()}
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"payments-keys-{part}"}, "data": data}
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(secret))
    return files


def _secret_files(cluster: localcluster.Cluster, namespace: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name in PART_NAMES:
        files.update(decoded(get_json(cluster, "secret", name, "-n", namespace)))
    return files


# --- rotating it (real API server) ---------------------------------------------------------------------------
@pytest.mark.slow
def test_rotating_the_secrets_adds_a_signing_key(cluster: localcluster.Cluster, namespace: str, tmp_path: Path) -> None:
    before = _create_store_secrets(cluster, namespace, tmp_path)
    keysecret.rotate_secrets(namespace, "payments-keys", 3600.0, PASSPHRASE, 0.0, client=_client(cluster))
    after = _secret_files(cluster, namespace)
    old_kids, new_kids = key_ids(before, tmp_path / "before"), key_ids(after, tmp_path / "after")
    assert len(new_kids) == len(old_kids) + 1 and set(old_kids) < set(new_kids)
    assert not any(name.startswith(".") for name in after)  # no lock file or temporary made it into a Secret
    for part in PARTS:  # each file stayed in its part's Secret
        secret = decoded(get_json(cluster, "secret", f"payments-keys-{part}", "-n", namespace))
        assert secret == split_files(after)[part]


@pytest.mark.slow
def test_a_retired_key_leaves_the_secrets(cluster: localcluster.Cluster, namespace: str, tmp_path: Path) -> None:
    before = _create_store_secrets(cluster, namespace, tmp_path)
    client = _client(cluster)
    keysecret.rotate_secrets(namespace, "payments-keys", 0.0, PASSPHRASE, 0.0, client=client)
    keysecret.rotate_secrets(namespace, "payments-keys", 0.0, PASSPHRASE, 0.0, client=client)
    after = _secret_files(cluster, namespace)
    first = key_ids(before, tmp_path / "before")[0]
    assert first not in key_ids(after, tmp_path / "after")
    assert not any(first in name for name in after)  # its files were deleted from the Secrets, not just left


@pytest.mark.slow
def test_a_secret_changed_during_the_rotation_is_not_overwritten(
    cluster: localcluster.Cluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public part is written last: refused, it publishes nothing, and the next rotation cleans up after it."""
    _create_store_secrets(cluster, namespace, tmp_path)
    rotate = keysecret.rotate_directory

    def concurrent_writer(*args: Any) -> LocalKeyStore:
        rotated = rotate(*args)  # meanwhile someone else changes a Secret: our resourceVersion is now stale
        patch = {"data": {"marker": base64.b64encode(b"theirs").decode()}}
        cluster.kubectl(
            "patch", "secret", "payments-keys-public", "-n", namespace, "--type=merge", "-p", json.dumps(patch)
        )
        return rotated

    monkeypatch.setattr(keysecret, "rotate_directory", concurrent_writer)
    with pytest.raises(keysecret.KeySecretError) as refused:
        keysecret.rotate_secrets(namespace, "payments-keys", 3600.0, PASSPHRASE, 0.0, client=_client(cluster))
    assert refused.value.conflict and "payments-keys-public" in str(refused.value)
    after = _secret_files(cluster, namespace)
    assert after["marker"] == b"theirs"
    assert len(key_ids(after, tmp_path / "after")) == 1  # nothing new was published
    monkeypatch.setattr(keysecret, "rotate_directory", rotate)
    keysecret.rotate_secrets(namespace, "payments-keys", 3600.0, PASSPHRASE, 0.0, client=_client(cluster))
    healed = _secret_files(cluster, namespace)
    published = {
        name.removesuffix(".json") for name in healed if name.startswith("signing-") and name.endswith(".json")
    }
    private = {name.removesuffix(".key") for name in healed if name.startswith("signing-") and name.endswith(".key")}
    assert len(published) == 2 and private == published  # the unpublished private key was dropped


@pytest.mark.slow
def test_a_missing_secret_is_a_one_line_error(cluster: localcluster.Cluster, namespace: str) -> None:
    with pytest.raises(keysecret.KeySecretError, match=f"Cannot read Secret {namespace}/nope-public"):
        keysecret.rotate_secrets(namespace, "nope", 3600.0, PASSPHRASE, 0.0, client=_client(cluster))
