"""Keys: JWT signing keys and the keys that wrap PAN data keys, behind one small interface.

Two backends, chosen by configuration: `local` (files, `local.LocalKeyStore`) and `vault` (transit,
`vault.VaultKeys`, when `GHOSTPAY_VAULT_ADDR` is set). `ring` holds the rotation rules both follow, and
`cache.KeyCache` is what a running service holds: the published keys, refreshed in the background.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from ghostpay.core.keys.ring import PublicKey
from ghostpay.core.settings import Settings


class KeyBackend(Protocol):
    """Synchronous (file IO, hvac): async callers run it in a worker thread."""

    def public_keys(self) -> list[PublicKey]:
        """Every published signing key version (reloaded from the store)."""

    def sign(self, kid: str, signing_input: bytes) -> bytes:
        """The raw signature of a JWS signing input by version `kid`."""

    def wrap(self, plaintext: bytes) -> bytes:
        """A data key wrapped by the newest key-encryption version (`<backend>:v<n>:<base64>`)."""

    def unwrap(self, wrapped: bytes) -> bytes: ...

    def rewrap(self, wrapped: bytes) -> bytes:
        """The same data key under the newest key-encryption version; `wrapped` itself if already there."""

    def rotate(self, grace: timedelta, activation_delay: timedelta, now: datetime | None = None) -> list[str]:
        """Retire versions past their grace period, add new versions; returns the retired kids."""

    def close(self) -> None:
        """Release connections (the Vault client's HTTP session)."""


def open_backend(settings: Settings, create: bool = True) -> KeyBackend:
    """The configured backend, opened. `create` False: a missing local store is an error (KeyStoreError)
    rather than made (what `ghostpay keys` wants: rotating a new, empty store would help nobody)."""
    if settings.vault_addr:
        from ghostpay.core.keys.vault import VaultKeys

        return VaultKeys(settings)
    from ghostpay.core.keys.local import LocalKeyStore

    # Without a passphrase only the public part is read: enough for a service that only verifies tokens.
    passphrase = settings.keys_passphrase.get_secret_value() if settings.keys_passphrase is not None else None
    return LocalKeyStore(settings.keys_dir, passphrase, settings.key_activation_delay_seconds).open(create)
