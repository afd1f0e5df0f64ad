"""The local key store: complete on first open, encrypted at rest, rotated by the rules of `ring`."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.utils import base64url_encode

from ghostpay.core.keys import ring, wrapping
from ghostpay.core.keys.local import KeyStoreError, LocalKeyStore, rotate_directory
from ghostpay.core.keys.wrapping import MalformedWrappedKey

PASSPHRASE = "correct horse battery staple"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
DATA_KEY = bytes(range(32))


def open_store(directory: Path, passphrase: str = PASSPHRASE) -> LocalKeyStore:
    return LocalKeyStore(directory, passphrase).open()


def kids(store: LocalKeyStore) -> list[str]:
    return [k.kid for k in store.public_keys()]


def versions(store: LocalKeyStore) -> list[int]:
    return [k.version for k in store.public_keys()]


def kek_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("kek-*.key"))


def signed_token(store: LocalKeyStore, kid: str, claims: dict[str, object]) -> str:
    header = base64url_encode(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    signing_input = header + b"." + base64url_encode(json.dumps(claims).encode())
    return (signing_input + b"." + base64url_encode(store.sign(kid, signing_input))).decode()


# --- opening -----------------------------------------------------------------------------------------------
def test_open_creates_a_complete_store(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    store = open_store(directory)
    [key] = store.public_keys()
    assert key.version == 1 and key.kid.startswith("local-v1-") and key.alg == "RS256"
    assert key.kid == f"local-v1-{ring.thumbprint(key.public_key)[:16]}"
    assert sorted(store.files()) == ["kek-1.key", "keystore.json", f"signing-{key.kid}.json", f"signing-{key.kid}.key"]
    assert store.unwrap(store.wrap(DATA_KEY)) == DATA_KEY


def test_no_secret_is_stored_in_clear_and_only_the_owner_can_read(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    store = open_store(directory)
    private_key = store.private_key(kids(store)[0])
    secrets_in_clear = {
        "pkcs8 der": private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        "pkcs8 pem": private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        "pkcs1 der": private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ),
        "private exponent": private_key.private_numbers().d.to_bytes(256, "big"),
        "prime p": private_key.private_numbers().p.to_bytes(128, "big"),
        "passphrase": PASSPHRASE.encode(),
        # No public accessor for these (they never leave the store): read for this check only.
        **{f"kek {v}": kek for v, kek in store._keks.items()},
        "master key": store._master,
    }
    files = store.files()
    assert len(files) == 4
    for name, content in files.items():
        for what, secret in secrets_in_clear.items():
            assert secret not in content, f"{what} in clear in {name}"
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert {p.name for p in directory.iterdir() if p.name.startswith(".")} <= {".lock"}  # no temporary file left


def test_reopening_with_the_same_passphrase_gives_the_same_keys(tmp_path: Path) -> None:
    first = open_store(tmp_path / "keys")
    wrapped = first.wrap(DATA_KEY)
    files = first.files()
    again = open_store(tmp_path / "keys")
    assert kids(again) == kids(first)
    assert again.files() == files  # opening a complete store writes nothing
    assert again.unwrap(wrapped) == DATA_KEY
    kid = kids(first)[0]
    assert again.private_key(kid).private_numbers() == first.private_key(kid).private_numbers()


def test_a_wrong_passphrase_is_refused_clearly(tmp_path: Path) -> None:
    open_store(tmp_path / "keys")
    with pytest.raises(KeyStoreError, match="GHOSTPAY_KEYS_PASSPHRASE"):
        open_store(tmp_path / "keys", "not the passphrase")


def test_an_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="passphrase"):
        LocalKeyStore(tmp_path / "keys", "")
    assert not (tmp_path / "keys").exists()


def test_a_file_renamed_onto_another_name_does_not_decrypt(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    store = open_store(directory)
    store.rotate(grace=DAY, activation_delay=HOUR)
    os.replace(directory / "kek-2.key", directory / "kek-1.key")  # kek-1.key now holds version 2's bytes
    with pytest.raises(KeyStoreError, match=r"kek-1\.key"):
        open_store(directory)


def test_a_signing_key_copied_onto_another_versions_file_does_not_decrypt(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    store = open_store(directory)
    store.rotate(grace=DAY, activation_delay=HOUR)
    first, second = kids(store)
    shutil.copyfile(directory / f"signing-{second}.key", directory / f"signing-{first}.key")
    with pytest.raises(KeyStoreError, match=f"signing-{first}"):
        open_store(directory)


# --- signing -------------------------------------------------------------------------------------------------
def test_a_signature_verifies_with_the_published_key(tmp_path: Path) -> None:
    store = open_store(tmp_path / "keys")
    [key] = store.public_keys()
    claims = {"sub": "cli_m", "n": 1}
    token = signed_token(store, key.kid, claims)
    assert jwt.get_unverified_header(token)["kid"] == key.kid
    assert jwt.decode(token, key.public_key, algorithms=["RS256"]) == claims
    other = open_store(tmp_path / "other").public_keys()[0]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other.public_key, algorithms=["RS256"])


def test_signing_with_an_unknown_kid_is_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path / "keys")
    with pytest.raises(ring.KeysUnavailable):
        store.sign("local-v9-nope", b"a.b")


# --- rotation ------------------------------------------------------------------------------------------------
def test_rotate_publishes_a_version_that_signs_only_after_the_activation_delay(tmp_path: Path) -> None:
    store = open_store(tmp_path / "keys")
    reader = open_store(tmp_path / "keys")  # another process's copy of the same store
    first = kids(store)[0]
    now = datetime.now(UTC)
    assert store.rotate(grace=DAY, activation_delay=HOUR, now=now) == []
    assert versions(store) == [1, 2]
    second = store.public_keys()[1]
    assert second.created_at == now
    assert ring.signing_key(store.public_keys(), now, HOUR).kid == first
    assert ring.signing_key(store.public_keys(), now + HOUR - timedelta(seconds=1), HOUR).kid == first
    assert ring.signing_key(store.public_keys(), now + HOUR, HOUR) == second
    assert kek_files(tmp_path / "keys") == ["kek-1.key", "kek-2.key"]

    reader.reload()
    assert kids(reader) == [first, second.kid]
    assert reader.private_key(second.kid).public_key().public_numbers() == second.public_key.public_numbers()
    token = signed_token(reader, second.kid, {"sub": "x"})
    assert jwt.decode(token, second.public_key, algorithms=["RS256"]) == {"sub": "x"}
    assert wrapping.version_of(reader.wrap(DATA_KEY)) == 2
    assert store.unwrap(reader.wrap(DATA_KEY)) == DATA_KEY


def test_rotate_retires_old_versions_only_after_the_grace_period(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    store = open_store(directory)
    delay, grace = HOUR, 6 * HOUR
    t1 = store.public_keys()[0].created_at + DAY
    assert store.rotate(grace, delay, now=t1) == []
    v1, v2 = kids(store)
    # v2 started signing at t1 + delay: v1 lives until t1 + delay + grace.
    t2 = t1 + delay + grace - timedelta(seconds=1)
    assert store.rotate(grace, delay, now=t2) == []
    assert versions(store) == [1, 2, 3]
    assert store.rotate(grace, delay, now=t1 + delay + grace) == [v1]  # exactly the end of the grace
    assert versions(store) == [2, 3, 4]
    assert not (directory / f"signing-{v1}.json").exists()
    assert not (directory / f"signing-{v1}.key").exists()
    assert (directory / f"signing-{v2}.json").exists() and (directory / f"signing-{v2}.key").exists()
    with pytest.raises(ring.KeysUnavailable):
        store.private_key(v1)
    assert kek_files(directory) == [f"kek-{n}.key" for n in range(1, 5)]  # never deleted

    reopened = open_store(directory)
    assert versions(reopened) == [2, 3, 4]


def test_a_reload_drops_the_versions_another_instance_retired(tmp_path: Path) -> None:
    store = open_store(tmp_path / "keys")
    reader = open_store(tmp_path / "keys")
    t1 = store.public_keys()[0].created_at + DAY
    store.rotate(timedelta(0), timedelta(0), now=t1)
    [v1, v2] = kids(store)
    store.rotate(timedelta(0), timedelta(0), now=t1 + HOUR)
    reader.reload()
    assert versions(reader) == [2, 3] and v2 in kids(reader) and v1 not in kids(reader)


def test_rotate_directory_rotates_the_store_in_a_directory(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    with pytest.raises(KeyStoreError, match="no key store"):  # rotating nothing is not creating something
        rotate_directory(directory, PASSPHRASE, grace_seconds=86400, activation_delay_seconds=3600)
    assert not directory.exists()
    store = open_store(directory)
    rotated = rotate_directory(directory, PASSPHRASE, grace_seconds=86400, activation_delay_seconds=3600)
    assert rotated.files() == {p.name: p.read_bytes() for p in directory.iterdir() if not p.name.startswith(".")}
    store.reload()
    assert versions(store) == [1, 2]
    assert kek_files(directory) == ["kek-1.key", "kek-2.key"]
    rotate_directory(directory, PASSPHRASE, grace_seconds=0, activation_delay_seconds=0)  # v1 retires now
    store.reload()
    assert versions(store) == [2, 3]
    with pytest.raises(KeyStoreError):
        rotate_directory(directory, "not the passphrase", grace_seconds=0, activation_delay_seconds=0)
    store.reload()
    assert versions(store) == [2, 3]


def test_public_keys_reflect_a_rotation_made_by_another_instance(tmp_path: Path) -> None:
    """The KeyBackend contract: public_keys() returns the versions "reloaded from the store". A service's
    KeyCache only ever calls public_keys(), so a store rotated by another process (`ghostpay keys rotate`, the
    operator's CronJob rewriting the mounted Secret) must show its new version there."""
    serving = open_store(tmp_path / "keys")
    rotator = open_store(tmp_path / "keys")
    rotator.rotate(grace=DAY, activation_delay=HOUR)
    assert [k.kid for k in serving.public_keys()] == kids(rotator)


# --- wrapping data keys -----------------------------------------------------------------------------------------
def test_wrap_then_unwrap(tmp_path: Path) -> None:
    store = open_store(tmp_path / "keys")
    wrapped = store.wrap(DATA_KEY)
    assert wrapped.startswith(b"local:v1:")
    assert wrapping.version_of(wrapped) == 1
    assert DATA_KEY not in wrapped and DATA_KEY not in wrapping.decode("local", wrapped)[1]
    assert store.wrap(DATA_KEY) != wrapped  # a fresh nonce every time
    assert store.unwrap(wrapped) == DATA_KEY


def test_rewrap_moves_a_data_key_to_the_newest_kek(tmp_path: Path) -> None:
    store = open_store(tmp_path / "keys")
    before = store.wrap(DATA_KEY)
    store.rotate(grace=DAY, activation_delay=HOUR)
    store.rotate(grace=DAY, activation_delay=HOUR)
    rewrapped = store.rewrap(before)
    assert wrapping.version_of(rewrapped) == 3
    assert store.unwrap(rewrapped) == DATA_KEY
    assert store.unwrap(before) == DATA_KEY  # the old wrapping still unwraps
    assert store.rewrap(rewrapped) == rewrapped  # already current: unchanged
    current = store.wrap(b"another key")
    assert store.rewrap(current) == current


def test_unwrap_refuses_another_backends_wrapping(tmp_path: Path) -> None:
    store = open_store(tmp_path / "keys")
    sealed = wrapping.decode("local", store.wrap(DATA_KEY))[1]
    with pytest.raises(MalformedWrappedKey):
        store.unwrap(wrapping.encode("vault", 1, sealed))
    with pytest.raises(MalformedWrappedKey):
        store.unwrap(b"vault:v1:c2VhbGVk")


def test_rewrap_refuses_another_backends_wrapping(tmp_path: Path) -> None:
    """A Vault-wrapped key is not "already under the newest local kek", whatever its version number says:
    rewrap must refuse it as unwrap does, not hand it back as current."""
    store = open_store(tmp_path / "keys")
    with pytest.raises(MalformedWrappedKey):
        store.rewrap(b"vault:v1:c2VhbGVk")


def test_unwrap_with_an_unknown_kek_version_is_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path / "keys")
    sealed = wrapping.decode("local", store.wrap(DATA_KEY))[1]
    with pytest.raises(KeyStoreError, match="version 9"):
        store.unwrap(wrapping.encode("local", 9, sealed))


# --- opening concurrently ------------------------------------------------------------------------------------
def test_threads_opening_an_empty_directory_at_once_end_with_one_store(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    workers = 4
    start = threading.Barrier(workers, timeout=30)

    def opened() -> tuple[list[str], bytes]:
        start.wait()
        store = open_store(directory)
        return kids(store), store.unwrap(store.wrap(DATA_KEY))

    with ThreadPoolExecutor(workers) as pool:
        results = [f.result(timeout=120) for f in [pool.submit(opened) for _ in range(workers)]]
    assert all(result == results[0] for result in results)
    assert len(results[0][0]) == 1 and results[0][1] == DATA_KEY
    assert kek_files(directory) == ["kek-1.key"]
    assert len(list(directory.glob("signing-*.json"))) == 1
    assert len(list(directory.glob("signing-*.key"))) == 1


def _open_and_list_kids(directory: str) -> list[str]:
    return kids(open_store(Path(directory)))


@pytest.mark.slow
def test_processes_opening_an_empty_directory_at_once_end_with_one_store(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map_async(_open_and_list_kids, [str(directory)] * 3).get(timeout=120)
    assert len(results[0]) == 1 and all(result == results[0] for result in results)
    assert kek_files(directory) == ["kek-1.key"]
    assert len(list(directory.glob("signing-*.json"))) == 1


def test_a_store_of_the_earlier_unencrypted_format_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "kek.key").write_bytes(b"c2VjcmV0")  # the flat format before keys were encrypted at rest
    with pytest.raises(KeyStoreError, match="earlier, unencrypted format"):
        LocalKeyStore(tmp_path, "pass").open()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek.key"]  # nothing written beside it


@pytest.mark.parametrize(("field", "value"), [("alg", "HS256"), ("version", 99), ("created_at", "2000-01-01T00:00:00")])
def test_edited_public_metadata_makes_the_key_fail_to_load(tmp_path: Path, field: str, value: object) -> None:
    """The .json beside a signing key is plain but authenticated: editing it cannot change how the key is used."""
    open_store(tmp_path)
    (meta_path,) = tmp_path.glob("signing-*.json")
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, field: value}))
    with pytest.raises(KeyStoreError, match="wrong GHOSTPAY_KEYS_PASSPHRASE or a damaged file"):
        open_store(tmp_path)


def test_a_new_key_encryption_version_wraps_only_after_the_activation_delay(tmp_path: Path) -> None:
    """Publish before use for the PAN key-encryption keys too: another process may not have read it yet."""
    store = LocalKeyStore(tmp_path, PASSPHRASE, activation_delay_seconds=3600).open()
    wrapped = store.wrap(DATA_KEY)
    assert wrapping.version_of(wrapped) == 1  # the first version wraps at once
    store.rotate(grace=DAY, activation_delay=HOUR)
    store.reload()
    assert wrapping.version_of(store.wrap(DATA_KEY)) == 1  # version 2 is known, but not for an hour yet
    assert store.rewrap(wrapped) == wrapped
    eager = LocalKeyStore(tmp_path, PASSPHRASE, activation_delay_seconds=0).open()
    rewrapped = eager.rewrap(wrapped)
    assert wrapping.version_of(rewrapped) == 2
    assert store.unwrap(rewrapped) == DATA_KEY  # the cautious process still opens what the eager one wrapped
    assert store.rewrap(rewrapped) == rewrapped  # and never moves it back to an older version
