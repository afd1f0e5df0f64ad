"""The local key store: JWT signing keys, the key-encryption key for PAN data keys, and the PAN lookup key.

Kept in one directory (`GHOSTPAY_KEYS_DIR`, `DIR/keys` under `ghostpay dev`) readable only by its owner.
Every process pointed at the same directory sees the same keys, so two `ghostpay serve` processes verify each
other's tokens. Created on first use; safe when several processes start at once (an exclusive file lock).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ghostpay.core.ids import new_id

SIGNING_ALG = "RS256"
_NONCE_BYTES = 12
_SIGNING_PREFIX = "signing-"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_key: rsa.RSAPrivateKey
    created_at: datetime

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()


class LocalKeyStore:
    """Keys in files under `directory`; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._signing: list[SigningKey] = []
        self._kek = b""
        self._lookup = b""

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _complete(self) -> bool:
        return all((self.directory / name).exists() for name in ("kek.key", "lookup.key")) and any(
            self._signing_files()
        )

    def _signing_files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{_SIGNING_PREFIX}*.pem"))

    def open(self) -> LocalKeyStore:
        """Create whatever is missing (under a lock), then load everything. A complete store is only read, so it
        may be a read-only mount (a Kubernetes Secret)."""
        if not self._complete():
            with self._locked():
                self._secret_file("kek.key")
                self._secret_file("lookup.key")
                if not self._signing_files():
                    self._write_signing_key()
        self.reload()
        return self

    def reload(self) -> None:
        self._kek = base64.b64decode((self.directory / "kek.key").read_bytes())
        self._lookup = base64.b64decode((self.directory / "lookup.key").read_bytes())
        keys = [self._read_signing_key(path) for path in self._signing_files()]
        self._signing = sorted(keys, key=lambda k: (k.created_at, k.kid))

    def files(self) -> dict[str, bytes]:
        """Every file of the store by name (flat, so a Kubernetes Secret can hold the whole store)."""
        return {path.name: path.read_bytes() for path in sorted(self.directory.iterdir()) if path.name[0] != "."}

    def _secret_file(self, name: str) -> None:
        path = self.directory / name
        if not path.exists():
            _write_private(path, base64.b64encode(secrets.token_bytes(32)))

    def _write_signing_key(self) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = new_id("key")
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        created = datetime.now(UTC)
        _write_private(
            self.directory / f"{_SIGNING_PREFIX}{kid}.json",
            json.dumps({"kid": kid, "alg": SIGNING_ALG, "created_at": created.isoformat()}).encode(),
        )
        _write_private(self.directory / f"{_SIGNING_PREFIX}{kid}.pem", pem)
        return SigningKey(kid, SIGNING_ALG, key, created)

    @staticmethod
    def _read_signing_key(pem_path: Path) -> SigningKey:
        meta = json.loads(pem_path.with_suffix(".json").read_text())
        key = serialization.load_pem_private_key(pem_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return SigningKey(meta["kid"], meta["alg"], key, datetime.fromisoformat(meta["created_at"]))

    # --- signing ---------------------------------------------------------------------------------------
    def current_signing_key(self) -> SigningKey:
        return self._signing[-1]

    def verification_keys(self) -> list[SigningKey]:
        return list(self._signing)

    # --- envelope encryption of PAN data keys ------------------------------------------------------------
    def wrap_data_key(self, data_key: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + AESGCM(self._kek).encrypt(nonce, data_key, b"ghostpay-data-key")

    def unwrap_data_key(self, wrapped: bytes) -> bytes:
        return AESGCM(self._kek).decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], b"ghostpay-data-key")

    def lookup_key(self) -> bytes:
        """The HMAC key behind the PAN look-up hash."""
        return self._lookup


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, atomically (a reader never sees half a key)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
