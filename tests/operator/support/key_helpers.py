"""Helpers for the key store tests (unit and cluster): a Secret's files, and the key ids a set of files opens."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ghostpay.core.keys.local import LocalKeyStore

PASSPHRASE = "correct horse battery staple"
PART_NAMES = ["payments-keys-public", "payments-keys-signing", "payments-keys-pan"]


def decoded(secret: dict[str, Any]) -> dict[str, bytes]:
    return {name: base64.b64decode(value) for name, value in (secret.get("data") or {}).items()}


def key_ids(files: dict[str, bytes], folder: Path, passphrase: str = PASSPHRASE) -> list[str]:
    """The signing key ids the key store in `files` publishes (opened in `folder`, which must not exist)."""
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return [key.kid for key in LocalKeyStore(folder, passphrase).open().public_keys()]
