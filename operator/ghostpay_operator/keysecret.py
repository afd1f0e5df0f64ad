"""Rotation of a local key store kept in a Kubernetes Secret (the operator's `<instance>-keys`): what the
key-rotation Job runs through `ghostpay keys rotate --kube-secret NAME --namespace NS`.

The Secret's files are written to a private temporary directory, rotated there by the services' own key store
code, and written back as the Secret's whole data, with the resourceVersion that was read as a precondition: a
Secret changed meanwhile (another rotation) is refused with 409 Conflict instead of being overwritten. The
Job's Role allows get and patch on this one Secret only.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

from ghostpay.core.keys.local import KeyStoreError, rotate_directory

FIELD_MANAGER = "ghostpay-key-rotation"


class KeySecretError(KeyStoreError):
    """The Secret could not be read or written back (`conflict`: it changed since it was read; nothing was
    written). A KeyStoreError, so `ghostpay keys rotate` reports it in one line."""

    def __init__(self, message: str, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


def _write_files(directory: Path, data: dict[str, str]) -> None:
    for name, encoded in data.items():
        if "/" in name or name.startswith("."):
            raise ValueError(f"Unexpected key {name!r} in the key Secret (a flat key store has plain file names).")
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64decode(encoded))


def _read_files(directory: Path) -> dict[str, str]:
    """The store's regular files, skipping hidden ones (its lock file, half-written temporaries)."""
    return {
        path.name: base64.b64encode(path.read_bytes()).decode()
        for path in sorted(directory.iterdir())
        if path.is_file() and not path.name.startswith(".")
    }


def rotate_secret(
    namespace: str,
    name: str,
    grace_seconds: float,
    passphrase: str,
    activation_delay_seconds: float,
    client: Client | None = None,
) -> None:
    """Rotate the key store held in Secret `namespace/name` (see the module docstring). Raises KeySecretError
    when the Secret cannot be read or has changed since it was read (then nothing is written)."""
    client = client or Client(field_manager=FIELD_MANAGER)
    try:
        secret = client.get(Secret, name, namespace=namespace)
    except ApiError as exc:
        raise KeySecretError(f"Cannot read Secret {namespace}/{name}: {exc.status.message}") from exc
    assert secret.metadata is not None
    before = dict(secret.data or {})
    with tempfile.TemporaryDirectory(prefix="ghostpay-keys-") as folder:  # mode 0700
        directory = Path(folder)
        _write_files(directory, before)
        rotate_directory(directory, passphrase, grace_seconds, activation_delay_seconds)
        after = _read_files(directory)
    # A merge patch keeps keys it does not mention: the retired ones are removed explicitly (null).
    data: dict[str, str | None] = {**dict.fromkeys(before), **after}
    patch = {"metadata": {"resourceVersion": secret.metadata.resourceVersion}, "data": data}
    try:
        client.patch(Secret, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
    except ApiError as exc:
        conflict = exc.status.code == 409
        reason = "it changed during the rotation; run again" if conflict else exc.status.message
        raise KeySecretError(f"Secret {namespace}/{name} not updated: {reason}", conflict) from exc
