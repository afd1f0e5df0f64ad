"""The instance's local key store, kept in Secrets (`builders.keys` names them): made once by the operator, never
remade over existing card data, and rotated by the key-rotation Job (`ghostpay keys rotate --kube-secret NAME
--namespace NS` calls `rotate_secrets`).

Making: `plan` decides from what exists (pure); the operator then creates the passphrase Secret and the three part
Secrets with `create` (never an apply), so a racing writer cannot replace keys data is already encrypted with.
A store is made only where none can have existed: once any Secret of it is gone while the others remain, or the
database holds data keys a local store wrapped, the instance is Degraded with the missing Secrets named — a new
store would not open the old card numbers, and hiding the loss would make it permanent.

Rotation: the parts are written to a private temporary directory, rotated there by the services' own key store
code, and written back part by part (the PAN part, then the signing part, then the public part that publishes a
new version — so nothing is published before its private key exists), each with the resourceVersion that was
read as a precondition: a Secret changed meanwhile (another rotation) is refused with 409 Conflict instead of
being overwritten. The Job's Role allows get and patch on these Secrets only.
"""

from __future__ import annotations

import base64
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

from ghostpay.core.keys.local import PARTS, KeyStoreError, LocalKeyStore, Part, rotate_directory, split_files
from ghostpay_operator import status as st
from ghostpay_operator.builders import keys
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import InstanceSpec

FIELD_MANAGER = "ghostpay-key-rotation"
# Written last: the public part publishes a new signing version, so its private key must already be in place.
WRITE_ORDER: tuple[Part, ...] = ("pan", "signing", "public")


class KeySecretError(KeyStoreError):
    """A Secret could not be read or written back (`conflict`: it changed since it was read; nothing more was
    written). A KeyStoreError, so `ghostpay keys rotate` reports it in one line."""

    def __init__(self, message: str, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


# --- making the store ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    """What exists of an instance's key store."""

    passphrase: str | None  # the passphrase, when its Secret exists and holds one
    parts: frozenset[str]  # the names of the part Secrets that exist
    # Asked only when no part exists: whether the database holds data keys wrapped by a local store (None: the
    # database could not be asked).
    database_holds_local_keys: bool | None = None


def plan(spec: InstanceSpec, seen: Seen) -> Literal["ready", "make"] | st.Problem:
    """`ready`: nothing to do; `make`: create what is missing (a new store); a Problem: keys are lost or out of
    reach, and nothing may be made (see the module docstring)."""
    if spec.vault is not None:
        return "ready"
    names = keys.part_secret_names(spec)
    missing = [name for name in names if name not in seen.parts]
    if not missing:
        if seen.passphrase is None:
            return st.Problem(
                "KeyPassphraseMissing",
                f"Secret {keys.passphrase_secret_name(spec)!r} holding the key store's passphrase is missing: restore "
                "it from a backup. The operator never makes a new passphrase for an existing key store.",
            )
        return "ready"
    restore = f"Secret(s) {', '.join(repr(n) for n in missing)} of the local key store are missing"
    if len(missing) < len(names):
        return st.Problem("KeySecretMissing", f"{restore}: restore them from a backup. {_NEVER_REMADE}")
    if seen.database_holds_local_keys:
        return st.Problem(
            "KeySecretMissing",
            f"{restore}, and the database holds card data keys that a local key store wrapped: restore them from a "
            f"backup. {_NEVER_REMADE}",
        )
    if seen.database_holds_local_keys is None and seen.passphrase is not None:
        return st.Problem(
            "KeySecretMissing",
            f"{restore}, the passphrase Secret shows a store was made, and the database cannot be asked whether "
            "card data depends on it: restore them from a backup, or make the database reachable (a new store is "
            f"made only if it holds no card data). {_NEVER_REMADE}",
        )
    return "make"


_NEVER_REMADE = "The operator does not make a new key store: it would not open the card numbers already stored."


def passphrase_secret(spec: InstanceSpec) -> Manifest:
    """A random passphrase for the store's private parts. Made once; never rebuilt (not pure: random)."""
    passphrase = secrets.token_urlsafe(32).encode()
    return keys.secret(spec, keys.passphrase_secret_name(spec), {keys.PASSPHRASE_KEY: passphrase})


def store_secrets(spec: InstanceSpec, passphrase: str) -> list[Manifest]:
    """A fresh local key store, as one Secret per part. Made once; never rebuilt (not pure: random); the
    key-rotation Job rewrites them."""
    with tempfile.TemporaryDirectory() as folder:
        files = LocalKeyStore(Path(folder) / "keys", passphrase).open().files()
    parts = split_files(files)
    return [keys.secret(spec, keys.part_secret_name(spec, part), parts[part]) for part in PARTS]


def passphrase_of(secret: Manifest | None) -> str | None:
    """The passphrase a passphrase Secret holds (None: no Secret, or no passphrase in it)."""
    encoded = ((secret or {}).get("data") or {}).get(keys.PASSPHRASE_KEY)
    return base64.b64decode(encoded).decode() if encoded else None


# --- rotating it -----------------------------------------------------------------------------------------------
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
    client = client or Client(field_manager=FIELD_MANAGER)
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
