"""The instance's local key store, kept in Secrets (`builders.names` names them): made once by the operator, never
remade over existing card data. `keysecret` rotates it.

`plan` decides from what exists (pure); the reconcile pass then creates the passphrase Secret and the three part
Secrets with `create` (never an apply), so a racing writer cannot replace keys data is already encrypted with.
A store is made only where none can have existed: once any Secret of it is gone while the others remain, or the
database holds data keys a local store wrapped, the instance is Degraded with the missing Secrets named — a new
store would not open the old card numbers, and hiding the loss would make it permanent.

No Kubernetes client here: `passphrase_secret` and `store_secrets` only build manifests (random, so not pure).
"""

from __future__ import annotations

import base64
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ghostpay.core.keys.local import PARTS, LocalKeyStore, split_files
from ghostpay_operator.builders import keys, names
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import InstanceSpec
from ghostpay_operator.status import Problem
from ghostpay_operator.vocabulary import KeyStoreAction


@dataclass(frozen=True)
class Seen:
    """What exists of an instance's key store."""

    passphrase: str | None  # the passphrase, when its Secret exists and holds one
    parts: frozenset[str]  # the names of the part Secrets that exist
    # Asked only when no part exists: whether the database holds data keys wrapped by a local store (None: the
    # database could not be asked).
    database_holds_local_keys: bool | None = None


def plan(spec: InstanceSpec, seen: Seen) -> KeyStoreAction | Problem:
    """`ready`: nothing to do; `make`: create what is missing (a new store); a Problem: keys are lost or out of
    reach, and nothing may be made (see the module docstring)."""
    if spec.vault is not None:
        return "ready"
    wanted = names.key_part_secrets(spec.name)
    missing = [name for name in wanted if name not in seen.parts]
    if not missing:
        if seen.passphrase is None:
            return Problem(
                "KeyPassphraseMissing",
                f"Secret {names.key_passphrase_secret(spec.name)!r} holding the key store's passphrase is missing: "
                "restore it from a backup. The operator never makes a new passphrase for an existing key store.",
            )
        return "ready"
    restore = f"Secret(s) {', '.join(repr(n) for n in missing)} of the local key store are missing"
    if len(missing) < len(wanted):
        return Problem("KeySecretMissing", f"{restore}: restore them from a backup. {_NEVER_REMADE}")
    if seen.database_holds_local_keys:
        return Problem(
            "KeySecretMissing",
            f"{restore}, and the database holds card data keys that a local key store wrapped: restore them from a "
            f"backup. {_NEVER_REMADE}",
        )
    if seen.database_holds_local_keys is None and seen.passphrase is not None:
        return Problem(
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
    return keys.secret(spec, names.key_passphrase_secret(spec.name), {keys.PASSPHRASE_KEY: passphrase})


def store_secrets(spec: InstanceSpec, passphrase: str) -> list[Manifest]:
    """A fresh local key store, as one Secret per part. Made once; never rebuilt (not pure: random); the
    key-rotation Job rewrites them."""
    with tempfile.TemporaryDirectory() as folder:
        files = LocalKeyStore(Path(folder) / "keys", passphrase).open().files()
    parts = split_files(files)
    return [keys.secret(spec, names.key_part_secret(spec.name, part), parts[part]) for part in PARTS]


def passphrase_of(secret: Manifest | None) -> str | None:
    """The passphrase a passphrase Secret holds (None: no Secret, or no passphrase in it)."""
    encoded = ((secret or {}).get("data") or {}).get(keys.PASSPHRASE_KEY)
    return base64.b64decode(encoded).decode() if encoded else None
