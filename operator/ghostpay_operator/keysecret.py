"""Rotation of the local key store kept in Secrets (`keystore` makes it): the key-rotation Job's
`ghostpay keys rotate --kube-secret NAME --namespace NS` calls `rotate_secrets`.

The parts are written to a private temporary directory, rotated there by the services' own key store code, and
written back part by part (the PAN part, then the signing part, then the public part that publishes a new
version — so nothing is published before its private key exists), each with the resourceVersion that was read as
a precondition: a Secret changed meanwhile (another rotation) is refused with 409 Conflict instead of being
overwritten. The Job's Role allows get and patch on these Secrets only. Its API client comes from `kube`.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

from ghostpay.core.keys.local import PARTS, KeyStoreError, Part, rotate_directory, split_files
from ghostpay_operator import kube

FIELD_MANAGER = "ghostpay-key-rotation"
# Written last: the public part publishes a new signing version, so its private key must already be in place.
WRITE_ORDER: tuple[Part, ...] = ("pan", "signing", "public")


class KeySecretError(KeyStoreError):
    """A Secret could not be read or written back (`conflict`: it changed since it was read; nothing more was
    written). A KeyStoreError, so `ghostpay keys rotate` reports it in one line."""

    def __init__(self, message: str, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


def _write_files(directory: Path, data: dict[str, str]) -> None:
    for name, encoded in data.items():
        if "/" in name or name.startswith("."):
            raise KeySecretError(f"Unexpected key {name!r} in a key Secret (a key store has plain file names).")
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64decode(encoded))


def rotate_secrets(
    namespace: str,
    store_name: str,
    grace_seconds: float,
    passphrase: str,
    activation_delay_seconds: float,
    client: Client | None = None,
) -> None:
    """Rotate the key store held in Secrets `namespace/<store_name>-<part>` (see the module docstring). Raises
    KeySecretError when a Secret cannot be read, or has changed since it was read."""
    client = client or kube.sync_client(FIELD_MANAGER)
    read: dict[Part, Secret] = {}
    for part in PARTS:
        name = f"{store_name}-{part}"
        try:
            read[part] = client.get(Secret, name, namespace=namespace)
        except ApiError as exc:
            raise KeySecretError(f"Cannot read Secret {namespace}/{name}: {exc.status.message}") from exc
    before = {part: dict(secret.data or {}) for part, secret in read.items()}
    with tempfile.TemporaryDirectory(prefix="ghostpay-keys-") as folder:  # mode 0700
        directory = Path(folder)
        for data in before.values():
            _write_files(directory, data)
        rotated = split_files(rotate_directory(directory, passphrase, grace_seconds, activation_delay_seconds).files())
    for part in WRITE_ORDER:
        after = {name: base64.b64encode(content).decode() for name, content in rotated[part].items()}
        _patch(client, namespace, read[part], {**dict.fromkeys(before[part]), **after})


def _patch(client: Client, namespace: str, secret: Secret, data: dict[str, str | None]) -> None:
    """A merge patch keeps keys it does not mention: the retired ones are sent as null."""
    assert secret.metadata is not None and secret.metadata.name is not None
    name = secret.metadata.name
    patch = {"metadata": {"resourceVersion": secret.metadata.resourceVersion}, "data": data}
    try:
        client.patch(Secret, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
    except ApiError as exc:
        conflict = exc.status.code == 409
        reason = "it changed during the rotation; run again" if conflict else exc.status.message
        raise KeySecretError(f"Secret {namespace}/{name} not updated: {reason}", conflict) from exc
