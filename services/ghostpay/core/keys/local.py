"""The local key backend: signing keys and PAN key-encryption keys in files under one directory.

`ghostpay dev` keeps it in `DIR/keys`; the operator keeps it in a Kubernetes Secret mounted into every pod.
Every secret byte is encrypted at rest with AES-256-GCM under a key derived (scrypt) from a passphrase that is
not stored in the directory (`GHOSTPAY_KEYS_PASSPHRASE`; `ghostpay dev` keeps one beside, not inside, the
store). The file name is authenticated data, so a file renamed onto another fails to decrypt; so is a signing
key's public metadata (version, date, algorithm), so an edited `.json` makes its key fail to load.

Files (flat, so Kubernetes Secrets can hold the store), in three parts (`part_of`) so that each process can be
given only what it uses (the operator keeps each part in its own Secret):
  public   keystore.json             format and the scrypt salt (not secret)
           signing-<kid>.json        a signing key version's public key and metadata (what verifiers need)
  signing  signing-<kid>.key         its private key, encrypted (only where tokens are signed)
  pan      kek-<n>.key               version n of the key that wraps PAN data keys, encrypted (only where cards are)

A process without the passphrase, or without the signing or pan part, opens the store too and holds only what
it was given: it verifies tokens, and refuses to sign or wrap with a clear error.

Writers take an exclusive lock and replace files atomically; a version counts once its `.json` (written
last, removed first) exists, so a reader never sees half a key. A complete store is only read, so it may be a
read-only mount.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ghostpay.core.keys import ring, wrapping

_NONCE_BYTES = 12
_FORMAT = 1
_SCRYPT = {"length": 32, "n": 2**15, "r": 8, "p": 1}
_KEK_FILE = re.compile(r"^kek-([0-9]+)\.key$")
_SIGNING_META = re.compile(r"^signing-(.+)\.json$")
_SIGNING_KEY = re.compile(r"^signing-(.+)\.key$")

Part = Literal["public", "signing", "pan"]
PARTS: tuple[Part, ...] = ("public", "signing", "pan")


def part_of(file_name: str) -> Part:
    """Which part of the store a file belongs to (see the module docstring)."""
    if _KEK_FILE.match(file_name):
        return "pan"
    if _SIGNING_KEY.match(file_name):
        return "signing"
    return "public"


def split_files(files: dict[str, bytes]) -> dict[Part, dict[str, bytes]]:
    """The store's files by part: what each of the operator's key Secrets holds."""
    parts: dict[Part, dict[str, bytes]] = {part: {} for part in PARTS}
    for name, content in files.items():
        parts[part_of(name)][name] = content
    return parts


class KeyStoreError(RuntimeError):
    """The store cannot be opened: a wrong passphrase, or a damaged or foreign file."""


@dataclass(frozen=True)
class _SigningVersion:
    public: ring.PublicKey
    private_key: rsa.RSAPrivateKey | None  # None where this process was given only the public part


class LocalKeyStore:
    """See the module docstring. `open()` creates what is missing and loads; `reload()` picks up rotations."""

    def __init__(self, directory: Path, passphrase: str | None, activation_delay_seconds: float = 0.0) -> None:
        """`passphrase` None: only the public part is read (a process that verifies tokens and nothing else)."""
        if passphrase is not None and not passphrase:
            raise KeyStoreError("The local key store's passphrase (GHOSTPAY_KEYS_PASSPHRASE) is empty.")
        self.directory = directory
        self._passphrase = passphrase.encode() if passphrase else b""
        self._activation_delay = activation_delay_seconds
        self._master = b""
        self._signing: dict[str, _SigningVersion] = {}
        self._keks: dict[int, bytes] = {}
        self._kek_seen: dict[int, float] = {}  # when this process first read each version (monotonic)

    # --- opening and reloading -------------------------------------------------------------------------
    def open(self, create: bool = True) -> LocalKeyStore:
        """Load the store; create what is missing unless `create` is False (then a missing store is an error)."""
        if (self.directory / "kek.key").exists() and not (self.directory / "keystore.json").exists():
            raise KeyStoreError(
                f"{self.directory} holds a key store of an earlier, unencrypted format, which this version does not "
                "read; start with a new data directory."
            )
        if not self._complete():
            if not create:
                raise KeyStoreError(f"There is no key store in {self.directory}.")
            if not self._passphrase:
                raise KeyStoreError("Creating a local key store needs a passphrase (GHOSTPAY_KEYS_PASSPHRASE).")
            with self._locked():
                self._master = self._master_key(create=True)
                if not self._kek_versions():
                    self._write_secret("kek-1.key", AESGCM.generate_key(bit_length=256))
                if not self._signing_metas():
                    self._write_signing_version(version=1)
        self.reload()
        return self

    def reload(self) -> None:
        """Read the versions on disk again; keys already decrypted are kept, not derived again. Private parts are
        read only with a passphrase."""
        if not self._master and self._passphrase:
            self._master = self._master_key(create=False)
        signing: dict[str, _SigningVersion] = {}
        for meta_path in self._signing_metas():
            kid = _SIGNING_META.match(meta_path.name)[1]  # type: ignore[index]  # listed by that pattern
            try:
                signing[kid] = self._signing.get(kid) or self._read_signing_version(meta_path)
            except FileNotFoundError:
                continue  # retired by another process between the listing and the read
        self._signing = signing
        kek_versions = self._kek_versions() if self._master else []
        self._keks = {v: self._keks.get(v) or self._read_secret(f"kek-{v}.key") for v in kek_versions}
        for version in self._keks:
            self._kek_seen.setdefault(version, time.monotonic())

    def files(self) -> dict[str, bytes]:
        """Every file of the store by name (what a Kubernetes Secret holds)."""
        return {p.name: p.read_bytes() for p in sorted(self.directory.iterdir()) if p.is_file() and p.name[0] != "."}

    # --- signing -----------------------------------------------------------------------------------------
    def public_keys(self) -> list[ring.PublicKey]:
        """Read from disk again, so a rotation by another process (`ghostpay keys rotate`) shows."""
        self.reload()
        return sorted((v.public for v in self._signing.values()), key=lambda k: k.version)

    def private_key(self, kid: str) -> rsa.RSAPrivateKey:
        version = self._signing.get(kid)
        if version is None:
            raise ring.KeysUnavailable(f"Signing key {kid} is no longer in the key store.")
        if version.private_key is None:
            raise ring.KeysUnavailable(f"This process holds no private key for {kid} (only the public part).")
        return version.private_key

    def sign(self, kid: str, signing_input: bytes) -> bytes:
        algorithm = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
        return algorithm.sign(signing_input, self.private_key(kid))

    # --- wrapping PAN data keys --------------------------------------------------------------------------
    def _wrapping_version(self) -> int:
        """Publish before use, as for signing keys: a new key-encryption version wraps only once this process
        has known it for the activation delay, so every process (each pod's copy of a mounted Secret, which
        the kubelet refreshes late) can unwrap what it wraps. The first version wraps at once."""
        self._require_keks()
        now = time.monotonic()
        aged = [v for v in self._keks if now - self._kek_seen[v] >= self._activation_delay]
        return max(aged) if aged else min(self._keks)

    def wrap(self, plaintext: bytes) -> bytes:
        version = self._wrapping_version()
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = nonce + AESGCM(self._keks[version]).encrypt(nonce, plaintext, b"ghostpay-data-key")
        return wrapping.encode("local", version, sealed)

    def _require_keks(self) -> None:
        if not self._keks:
            raise KeyStoreError("This process holds no PAN key-encryption keys (the store's pan part).")

    def unwrap(self, wrapped: bytes) -> bytes:
        version, sealed = wrapping.decode("local", wrapped)
        self._require_keks()
        if version not in self._keks:
            self.reload()  # wrapped after a rotation this process has not read yet
        kek = self._keks.get(version)
        if kek is None:
            raise KeyStoreError(f"Key-encryption key version {version} is not in the key store.")
        return AESGCM(kek).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], b"ghostpay-data-key")

    def rewrap(self, wrapped: bytes) -> bytes:
        """The same data key wrapped by the newest usable key-encryption version (unchanged if it already is,
        or is under a newer one)."""
        if wrapping.decode("local", wrapped)[0] >= self._wrapping_version():
            return wrapped
        return self.wrap(self.unwrap(wrapped))

    # --- rotation ----------------------------------------------------------------------------------------
    def rotate(self, grace: timedelta, activation_delay: timedelta, now: datetime | None = None) -> list[str]:
        """Retire the signing versions whose grace period is over, then add a signing version and a
        key-encryption version. Key-encryption versions are never deleted (a lost one loses PANs). Returns
        the retired kids."""
        now = now or datetime.now(UTC)
        if not self._master:
            raise KeyStoreError("Rotating the local key store needs its passphrase (GHOSTPAY_KEYS_PASSPHRASE).")
        with self._locked():
            published = self.public_keys()
            retired = set(ring.retired_versions(published, now, activation_delay, grace))
            retired_kids = [k.kid for k in published if k.version in retired]
            for kid in retired_kids:
                (self.directory / f"signing-{kid}.json").unlink()
                (self.directory / f"signing-{kid}.key").unlink(missing_ok=True)
            self._remove_unpublished_private_keys()
            self._write_signing_version(version=max(k.version for k in published) + 1, created_at=now)
            self._write_secret(f"kek-{max(self._keks) + 1}.key", AESGCM.generate_key(bit_length=256))
            self.reload()
        return retired_kids

    def _remove_unpublished_private_keys(self) -> None:
        """A private key whose public part was never written (a rotation that wrote the operator's Secrets only
        in part) can never sign: a version signs only once published."""
        for path in self.directory.glob("signing-*.key"):
            if not path.with_suffix(".json").exists():
                path.unlink()

    # --- files -------------------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def close(self) -> None:
        """Nothing to release: files are opened per read."""

    def _complete(self) -> bool:
        """A store exists once its public part does; the private parts may have been left out on purpose."""
        return (self.directory / "keystore.json").exists() and bool(self._signing_metas())

    def _kek_versions(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        found = (_KEK_FILE.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m[1]) for m in found if m)

    def _signing_metas(self) -> list[Path]:
        return sorted(self.directory.glob("signing-*.json")) if self.directory.is_dir() else []

    def _master_key(self, create: bool) -> bytes:
        path = self.directory / "keystore.json"
        if create and not path.exists():
            salt = base64.b64encode(secrets.token_bytes(16)).decode()
            header = {"format": _FORMAT, "kdf": "scrypt", "salt": salt, **_SCRYPT}
            _write_private(path, json.dumps(header).encode())
        header = json.loads(path.read_bytes())
        if header.get("format") != _FORMAT:
            raise KeyStoreError(f"{path} has format {header.get('format')!r}; this version reads {_FORMAT}.")
        # The cost the store was made with, so a later change of _SCRYPT does not lock old stores out.
        cost = {name: int(header[name]) for name in _SCRYPT}
        return Scrypt(salt=base64.b64decode(header["salt"]), **cost).derive(self._passphrase)

    def _write_secret(self, name: str, data: bytes, bound_to: bytes = b"") -> None:
        """Encrypted under the master key; the file name and `bound_to` (a key's public metadata) are the
        authenticated data, so neither can change without the file failing to decrypt."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(self._master).encrypt(nonce, data, name.encode() + b"\n" + bound_to)
        _write_private(self.directory / name, nonce + sealed)

    def _read_secret(self, name: str, bound_to: bytes = b"") -> bytes:
        blob = (self.directory / name).read_bytes()
        aad = name.encode() + b"\n" + bound_to
        try:
            return AESGCM(self._master).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise KeyStoreError(f"Cannot decrypt {name}: wrong GHOSTPAY_KEYS_PASSPHRASE or a damaged file.") from exc

    def _write_signing_version(self, version: int, created_at: datetime | None = None) -> None:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"local-v{version}-{ring.thumbprint(private_key.public_key())[:16]}"
        der = private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        created = (created_at or datetime.now(UTC)).isoformat()
        public_pem = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        fields = {"kid": kid, "version": version, "alg": ring.SIGNING_ALG, "created_at": created}
        meta = json.dumps({**fields, "public_key": public_pem.decode()}).encode()
        self._write_secret(f"signing-{kid}.key", der, bound_to=meta)
        _write_private(self.directory / f"signing-{kid}.json", meta)

    def _read_signing_version(self, meta_path: Path) -> _SigningVersion:
        """The metadata file is plain (it is public) but bound to the encrypted key file as authenticated data:
        an edited version, date, algorithm or public key makes the private key fail to load instead of changing
        how it is used. Without the private part (or the passphrase) the version is public only."""
        kid = _SIGNING_META.match(meta_path.name)[1]  # type: ignore[index]  # listed by that pattern
        meta_bytes = meta_path.read_bytes()
        meta = json.loads(meta_bytes)
        private_key = None
        key_path = self.directory / f"signing-{kid}.key"
        if self._master and key_path.exists():
            loaded = serialization.load_der_private_key(self._read_secret(key_path.name, meta_bytes), None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise KeyStoreError(f"{key_path.name} is not an {ring.SIGNING_ALG} key of this store.")
            private_key = loaded
        public_key = _public_key(meta, private_key, meta_path.name)
        if meta["kid"] != kid or meta["alg"] != ring.SIGNING_ALG:
            raise KeyStoreError(f"{meta_path.name} does not describe an {ring.SIGNING_ALG} key of this store.")
        public = ring.PublicKey(
            kid=kid,
            version=int(meta["version"]),
            public_key=public_key,
            created_at=datetime.fromisoformat(meta["created_at"]),
        )
        return _SigningVersion(public, private_key)


def _public_key(meta: dict[str, str], private_key: rsa.RSAPrivateKey | None, name: str) -> rsa.RSAPublicKey:
    """The version's public key: from its metadata (stores made before it was kept there: from the private key)."""
    if "public_key" not in meta:
        if private_key is None:
            raise KeyStoreError(f"{name} has no public key, and this process holds no private key to derive it from.")
        return private_key.public_key()
    public_key = serialization.load_pem_public_key(meta["public_key"].encode())
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise KeyStoreError(f"{name} does not hold an RSA public key.")
    return public_key


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, atomically (a reader never sees half a key)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def rotate_directory(
    directory: Path, passphrase: str, grace_seconds: float, activation_delay_seconds: float
) -> LocalKeyStore:
    """`ghostpay keys rotate` on the existing store in `directory` (the operator's Secret-backed rotation)."""
    store = LocalKeyStore(directory, passphrase).open(create=False)
    store.rotate(timedelta(seconds=grace_seconds), timedelta(seconds=activation_delay_seconds))
    return store
