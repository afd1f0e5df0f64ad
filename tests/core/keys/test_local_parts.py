"""The local key store in parts (finding 4 of the security review): each process is given only the part it uses
— the public part everywhere, the signing part where tokens are issued, the PAN part where cards are sealed —
and works with that alone."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from ghostpay.core.keys import ring
from ghostpay.core.keys.local import KeyStoreError, LocalKeyStore, Part, split_files

PASSPHRASE = "correct horse battery staple"
DATA_KEY = bytes(range(32))
HOUR = timedelta(hours=1)


def _given(tmp_path: Path, full: LocalKeyStore, parts: tuple[Part, ...], name: str) -> Path:
    """A directory holding only `parts` of the store (as a pod's projected Secret volume does)."""
    directory = tmp_path / name
    directory.mkdir()
    for part, files in split_files(full.files()).items():
        if part in parts:
            for file_name, content in files.items():
                (directory / file_name).write_bytes(content)
    return directory


@pytest.fixture
def full(tmp_path: Path) -> LocalKeyStore:
    store = LocalKeyStore(tmp_path / "full", PASSPHRASE).open()
    store.rotate(HOUR, HOUR)  # two versions of each key, so parts hold more than one file
    return store


def test_the_store_splits_into_public_signing_and_pan_files(full: LocalKeyStore) -> None:
    parts = split_files(full.files())
    assert sorted(parts) == ["pan", "public", "signing"]
    assert all(n == "keystore.json" or n.endswith(".json") for n in parts["public"])
    assert parts["signing"] and all(n.startswith("signing-") and n.endswith(".key") for n in parts["signing"])
    assert parts["pan"] and all(n.startswith("kek-") for n in parts["pan"])
    assert sum(len(files) for files in parts.values()) == len(full.files())


def test_finding_4_a_verifier_without_passphrase_or_private_parts_publishes_the_same_keys(
    tmp_path: Path, full: LocalKeyStore
) -> None:
    verifier = LocalKeyStore(_given(tmp_path, full, ("public",), "charges"), None).open(create=False)
    assert [k.kid for k in verifier.public_keys()] == [k.kid for k in full.public_keys()]
    assert [k.jwk() for k in verifier.public_keys()] == [k.jwk() for k in full.public_keys()]
    kid = full.public_keys()[0].kid
    with pytest.raises(ring.KeysUnavailable, match="no private key"):
        verifier.sign(kid, b"input")
    with pytest.raises(KeyStoreError, match="no PAN key-encryption keys"):
        verifier.wrap(DATA_KEY)


def test_finding_4_the_signing_part_signs_and_cannot_touch_pans(tmp_path: Path, full: LocalKeyStore) -> None:
    signer = LocalKeyStore(_given(tmp_path, full, ("public", "signing"), "auth"), PASSPHRASE).open(create=False)
    key = signer.public_keys()[-1]
    token = jwt.encode({"sub": "x"}, signer.private_key(key.kid), algorithm="RS256", headers={"kid": key.kid})
    assert jwt.decode(token, full.public_keys()[-1].public_key, algorithms=["RS256"]) == {"sub": "x"}
    with pytest.raises(KeyStoreError, match="no PAN key-encryption keys"):
        signer.unwrap(full.wrap(DATA_KEY))


def test_finding_4_the_pan_part_unwraps_and_cannot_sign(tmp_path: Path, full: LocalKeyStore) -> None:
    cards = LocalKeyStore(_given(tmp_path, full, ("public", "pan"), "cards"), PASSPHRASE).open(create=False)
    assert cards.unwrap(full.wrap(DATA_KEY)) == DATA_KEY
    assert full.unwrap(cards.wrap(DATA_KEY)) == DATA_KEY
    with pytest.raises(ring.KeysUnavailable, match="no private key"):
        cards.sign(cards.public_keys()[-1].kid, b"input")


def test_an_edited_public_key_makes_the_private_key_fail_to_load(tmp_path: Path, full: LocalKeyStore) -> None:
    """The public metadata, public key included, is bound to the encrypted private key."""
    directory = _given(tmp_path, full, ("public", "signing"), "auth")
    meta_path = next(directory.glob("signing-*.json"))
    other = json.loads(next(p for p in directory.glob("signing-*.json") if p != meta_path).read_text())
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "public_key": other["public_key"]}))
    with pytest.raises(KeyStoreError, match="wrong GHOSTPAY_KEYS_PASSPHRASE or a damaged file"):
        LocalKeyStore(directory, PASSPHRASE).open(create=False)


def test_a_store_is_never_created_without_a_passphrase(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="needs a passphrase"):
        LocalKeyStore(tmp_path / "keys", None).open()
    assert not (tmp_path / "keys").exists()


def test_rotation_drops_a_private_key_that_was_never_published(tmp_path: Path, full: LocalKeyStore) -> None:
    """A rotation whose Secrets were written only in part leaves a private key without its public part: it can
    never sign, and the next rotation removes it."""
    orphan = full.directory / "signing-local-v9-orphan.key"
    orphan.write_bytes(b"never published")
    full.rotate(HOUR, HOUR)
    assert not orphan.exists()
