"""The instance's local key store, kept in Secrets: made once by the operator (`<instance>-keys-passphrase`, a
random passphrase, and `<instance>-keys`, a key store encrypted with it), and rotated by the key-rotation Job
(`ghostpay keys rotate --kube-secret NAME --namespace NS` calls `rotate_secret`).

Rotation: the Secret's files are written to a private temporary directory, rotated there by the services' own
key store code, and written back as the Secret's whole data, with the resourceVersion that was read as a
precondition: a Secret changed meanwhile (another rotation) is refused with 409 Conflict instead of being
overwritten. The Job's Role allows get and patch on this one Secret only.
"""

from __future__ import annotations

import base64
import os
import secrets
import tempfile
from pathlib import Path

from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

from ghostpay.core.keys.local import KeyStoreError, LocalKeyStore, rotate_directory
from ghostpay_operator.builders import meta, pods
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import InstanceSpec

FIELD_MANAGER = "ghostpay-key-rotation"


class KeySecretError(KeyStoreError):
    """The Secret could not be read or written back (`conflict`: it changed since it was read; nothing was
    written). A KeyStoreError, so `ghostpay keys rotate` reports it in one line."""

    def __init__(self, message: str, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


def _secret(spec: InstanceSpec, name: str, data: dict[str, bytes]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta.object_meta(spec, name),
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def passphrase_secret(spec: InstanceSpec) -> Manifest:
    """A random passphrase for the local key store's private keys. Made once; never rebuilt (not pure: random)."""
    passphrase = secrets.token_urlsafe(32).encode()
    return _secret(spec, pods.passphrase_secret_name(spec), {pods.PASSPHRASE_KEY: passphrase})


def keys_secret(spec: InstanceSpec, passphrase: str) -> Manifest:
    """A fresh local key store, as a Secret the pods mount. Made once; never rebuilt (not pure: random); the
    key-rotation Job rewrites it."""
    with tempfile.TemporaryDirectory() as folder:
        files = LocalKeyStore(Path(folder) / "keys", passphrase).open().files()
    return _secret(spec, pods.keys_secret_name(spec), files)


def passphrase_of(secret: Manifest | None) -> str | None:
    """The passphrase a passphrase Secret holds (None: no Secret, or no passphrase in it)."""
    encoded = ((secret or {}).get("data") or {}).get(pods.PASSPHRASE_KEY)
    return base64.b64decode(encoded).decode() if encoded else None


def _write_files(directory: Path, data: dict[str, str]) -> None:
    for name, encoded in data.items():
        if "/" in name or name.startswith("."):
            raise KeySecretError(f"Unexpected key {name!r} in the key Secret (a key store has plain file names).")
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64decode(encoded))


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
        rotated = rotate_directory(directory, passphrase, grace_seconds, activation_delay_seconds)
        after = {name: base64.b64encode(content).decode() for name, content in rotated.files().items()}
    # A merge patch keeps keys it does not mention: the retired ones are removed explicitly (null).
    data: dict[str, str | None] = {**dict.fromkeys(before), **after}
    patch = {"metadata": {"resourceVersion": secret.metadata.resourceVersion}, "data": data}
    try:
        client.patch(Secret, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
    except ApiError as exc:
        conflict = exc.status.code == 409
        reason = "it changed during the rotation; run again" if conflict else exc.status.message
        raise KeySecretError(f"Secret {namespace}/{name} not updated: {reason}", conflict) from exc
