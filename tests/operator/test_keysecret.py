"""The key store's Secrets: made by the operator (a passphrase, and one Secret per part of a key store encrypted
with it), never owned by the instance, never remade over existing card data (`keystore.plan`), and rotated by
`keysecret.rotate_secrets` against a real API server: the store gains a signing key version, and a Secret changed
during the rotation is not overwritten."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig

from ghostpay.core.keys.local import PARTS, KeyStoreError, LocalKeyStore, split_files
from ghostpay_devtools import localcluster
from ghostpay_operator import keysecret, keystore
from ghostpay_operator import spec as specs
from ghostpay_operator import status as st
from tests.operator.kube_helpers import get_json
from tests.operator.samples import body

PASSPHRASE = "correct horse battery staple"
PART_NAMES = ["payments-keys-public", "payments-keys-signing", "payments-keys-pan"]
VAULT = {"vault": {"address": "https://vault.example:8200", "role": "gp"}}


def _client(cluster: localcluster.Cluster) -> Client:
    return Client(config=KubeConfig.from_file(cluster.kubeconfig), field_manager=keysecret.FIELD_MANAGER)


def _create_store_secrets(cluster: localcluster.Cluster, namespace: str, folder: Path) -> dict[str, bytes]:
    files = LocalKeyStore(folder / "keys", PASSPHRASE).open().files()
    for part, part_files in split_files(files).items():
        data = {name: base64.b64encode(content).decode() for name, content in part_files.items()}
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"payments-keys-{part}"}, "data": data}
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(secret))
    return files


def _decoded(secret: dict[str, Any]) -> dict[str, bytes]:
    return {name: base64.b64decode(value) for name, value in (secret.get("data") or {}).items()}


def _secret_files(cluster: localcluster.Cluster, namespace: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name in PART_NAMES:
        files.update(_decoded(get_json(cluster, "secret", name, "-n", namespace)))
    return files


def _kids(files: dict[str, bytes], folder: Path, passphrase: str = PASSPHRASE) -> list[str]:
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return [key.kid for key in LocalKeyStore(folder, passphrase).open().public_keys()]


# --- making the store (pure) ---------------------------------------------------------------------------------
def test_the_operator_makes_a_random_passphrase_and_a_key_store_in_parts_only_it_opens(tmp_path: Path) -> None:
    spec = specs.parse(body())
    first, second = keystore.passphrase_secret(spec), keystore.passphrase_secret(spec)
    assert first["metadata"]["name"] == "payments-keys-passphrase" and list(first["data"]) == ["passphrase"]
    passphrase = keystore.passphrase_of(first)
    assert passphrase is not None and len(passphrase) >= 40 and passphrase != keystore.passphrase_of(second)
    assert keystore.passphrase_of(None) is None
    made = keystore.store_secrets(spec, passphrase)
    assert [m["metadata"]["name"] for m in made] == PART_NAMES
    files = {name: content for m in made for name, content in _decoded(m).items()}
    assert {name for m in made[1:] for name in _decoded(m)}.isdisjoint(_decoded(made[0]))  # private parts apart
    assert len(_kids(files, tmp_path / "opened", passphrase)) == 1
    with pytest.raises(KeyStoreError):
        _kids(files, tmp_path / "wrong", "another passphrase")


def test_finding_1_key_secrets_are_not_owned_by_the_instance() -> None:
    """Deleting the instance (or an ArgoCD prune) must not take every stored card number with it."""
    spec = specs.parse(body())
    for secret in [keystore.passphrase_secret(spec), *keystore.store_secrets(spec, PASSPHRASE)]:
        metadata = secret["metadata"]
        assert "ownerReferences" not in metadata, metadata["name"]
        assert metadata["annotations"] == {"ghostpay.io/retention": "Retain"}
        assert metadata["labels"]["app.kubernetes.io/instance"] == "payments"


ALL = frozenset(PART_NAMES)
MISSING = "KeySecretMissing"


@pytest.mark.parametrize(
    ("passphrase", "parts", "database", "expected"),
    [
        ("p", ALL, None, "ready"),
        (None, frozenset(), None, "make"),  # a new instance, the database not (yet) reachable
        (None, frozenset(), False, "make"),
        ("p", frozenset(), False, "make"),  # a store whose making was interrupted, no card data depends on it
        (None, ALL, None, "KeyPassphraseMissing"),  # never a new passphrase for an existing store
        ("p", ALL - {"payments-keys-pan"}, False, MISSING),  # one part lost: never remade, whatever the database
        ("p", ALL - {"payments-keys-public"}, None, MISSING),
        (None, frozenset(), True, MISSING),  # a renamed instance over a database with card data
        ("p", frozenset(), True, MISSING),  # the store Secrets deleted by hand
        ("p", frozenset(), None, MISSING),  # ... and the database cannot say whether card data depends on them
    ],
)
def test_finding_1_a_key_store_is_made_only_where_none_can_have_existed(
    passphrase: str | None, parts: frozenset[str], database: bool | None, expected: str
) -> None:
    seen = keystore.Seen(passphrase=passphrase, parts=parts, database_holds_local_keys=database)
    decision = keystore.plan(specs.parse(body()), seen)
    assert (decision.reason if isinstance(decision, st.Problem) else decision) == expected
    if isinstance(decision, st.Problem) and expected == MISSING:
        assert all(name in decision.message for name in PART_NAMES if name not in parts)
        assert "restore" in decision.message


def test_with_vault_there_is_no_local_store_to_make() -> None:
    seen = keystore.Seen(passphrase=None, parts=frozenset(), database_holds_local_keys=True)
    assert keystore.plan(specs.parse(body(keyRotation=VAULT)), seen) == "ready"


# --- rotating it (real API server) ---------------------------------------------------------------------------
@pytest.mark.slow
def test_rotating_the_secrets_adds_a_signing_key(cluster: localcluster.Cluster, namespace: str, tmp_path: Path) -> None:
    before = _create_store_secrets(cluster, namespace, tmp_path)
    keysecret.rotate_secrets(namespace, "payments-keys", 3600.0, PASSPHRASE, 0.0, client=_client(cluster))
    after = _secret_files(cluster, namespace)
    old_kids, new_kids = _kids(before, tmp_path / "before"), _kids(after, tmp_path / "after")
    assert len(new_kids) == len(old_kids) + 1 and set(old_kids) < set(new_kids)
    assert not any(name.startswith(".") for name in after)  # no lock file or temporary made it into a Secret
    for part in PARTS:  # each file stayed in its part's Secret
        secret = _decoded(get_json(cluster, "secret", f"payments-keys-{part}", "-n", namespace))
        assert secret == split_files(after)[part]


@pytest.mark.slow
def test_a_retired_key_leaves_the_secrets(cluster: localcluster.Cluster, namespace: str, tmp_path: Path) -> None:
    before = _create_store_secrets(cluster, namespace, tmp_path)
    client = _client(cluster)
    keysecret.rotate_secrets(namespace, "payments-keys", 0.0, PASSPHRASE, 0.0, client=client)
    keysecret.rotate_secrets(namespace, "payments-keys", 0.0, PASSPHRASE, 0.0, client=client)
    after = _secret_files(cluster, namespace)
    first = _kids(before, tmp_path / "before")[0]
    assert first not in _kids(after, tmp_path / "after")
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
    assert len(_kids(after, tmp_path / "after")) == 1  # nothing new was published
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
