"""The Vault (or OpenBao) key backend: transit holds every private key and key-encryption key.

- Tokens are signed by `transit/sign/<jwt key>` with JWS marshaling, naming the key version explicitly; each
  version is one `kid` (`<key>-v<version>-<thumbprint>`: a thumbprint, so a rebuilt Vault never reuses a kid
  for a different key). The JWKS lists the versions from `min_decryption_version` up.
- PAN data keys are wrapped by `transit/encrypt/<pan key>` and rewrapped after a rotation.
- `rotate` moves the JWT key's version floors past the versions whose grace period is over, trims them, then adds
  a version to both keys. PAN key versions are never retired (a lost one loses PANs).

Login: a token (`GHOSTPAY_VAULT_TOKEN`), or Kubernetes auth with the pod's ServiceAccount token and
`GHOSTPAY_VAULT_ROLE`; a refused (expired) login is renewed once and the call retried. hvac is synchronous:
callers run these methods in a worker thread. Every failure to reach Vault is `KeysUnavailable`. Vault's TLS
certificate is checked against `GHOSTPAY_VAULT_CA_CERT` (a private CA's PEM bundle) when set, else the system's CAs.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ghostpay.core.keys import ring, wrapping
from ghostpay.core.settings import Settings

T = TypeVar("T")
log = logging.getLogger("ghostpay.keys")
_UNREACHABLE = (requests.RequestException, hvac.exceptions.VaultDown, hvac.exceptions.InternalServerError)


class VaultKeys:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._mount = settings.vault_transit_mount
        self._jwt_key = settings.vault_jwt_key
        self._pan_key = settings.vault_pan_key
        verify: bool | str = str(settings.vault_ca_cert) if settings.vault_ca_cert else True
        self._client = hvac.Client(url=settings.vault_addr, timeout=settings.vault_timeout_seconds, verify=verify)
        self._client.token = ""  # hvac would pick up VAULT_TOKEN or ~/.vault-token: only our settings count
        self._login_lock = threading.Lock()
        self._kids: dict[str, int] = {}

    # --- signing -----------------------------------------------------------------------------------------
    def public_keys(self) -> list[ring.PublicKey]:
        data = self._call(lambda t: t.read_key(self._jwt_key, mount_point=self._mount))["data"]
        floor = int(data.get("min_decryption_version") or 1)
        published = [
            _public_key(self._jwt_key, int(version), entry)
            for version, entry in data["keys"].items()
            if int(version) >= floor
        ]
        self._kids = {k.kid: k.version for k in published}
        return sorted(published, key=lambda k: k.version)

    def sign(self, kid: str, signing_input: bytes) -> bytes:
        version = self._kids.get(kid)
        if version is None:
            raise ring.KeysUnavailable(f"Signing key {kid} is not a published version.")
        signature = self._call(
            lambda t: t.sign_data(
                self._jwt_key,
                hash_input=base64.b64encode(signing_input).decode(),
                key_version=version,
                hash_algorithm="sha2-256",
                signature_algorithm="pkcs1v15",
                marshaling_algorithm="jws",
                mount_point=self._mount,
            )
        )["data"]["signature"]
        # "vault:v<version>:<base64url signature>": JWS marshaling already gives the JWS encoding, unpadded.
        encoded = signature.rsplit(":", 1)[1]
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))

    # --- wrapping PAN data keys --------------------------------------------------------------------------
    def wrap(self, plaintext: bytes) -> bytes:
        plaintext_b64 = base64.b64encode(plaintext).decode()
        data = self._call(lambda t: t.encrypt_data(self._pan_key, plaintext=plaintext_b64, mount_point=self._mount))
        return str(data["data"]["ciphertext"]).encode()

    def unwrap(self, wrapped: bytes) -> bytes:
        wrapping.decode("vault", wrapped)  # refuses another backend's wrapping with a clear message
        data = self._call(lambda t: t.decrypt_data(self._pan_key, ciphertext=wrapped.decode(), mount_point=self._mount))
        return base64.b64decode(data["data"]["plaintext"])

    def rewrap(self, wrapped: bytes) -> bytes:
        """Re-encrypted under the newest PAN key version by Vault, never seen in clear here."""
        data = self._call(lambda t: t.rewrap_data(self._pan_key, ciphertext=wrapped.decode(), mount_point=self._mount))
        rewrapped = str(data["data"]["ciphertext"]).encode()
        return rewrapped if wrapping.version_of(rewrapped) > wrapping.version_of(wrapped) else wrapped

    # --- rotation ----------------------------------------------------------------------------------------
    def rotate(self, grace: timedelta, activation_delay: timedelta, now: datetime | None = None) -> list[str]:
        published = self.public_keys()
        retired = ring.retired_versions(published, now or datetime.now(UTC), activation_delay, grace)
        if retired:
            floor = max(retired) + 1
            # Both floors move (trim needs them set); encryption first, as Vault keeps it >= the decryption one.
            for floor_name in ("min_encryption_version", "min_decryption_version"):
                self._set_floor(floor_name, floor)
            self._call(lambda t: t.trim_key(self._jwt_key, min_version=floor, mount_point=self._mount))
        self._call(lambda t: t.rotate_key(self._jwt_key, mount_point=self._mount))
        self._call(lambda t: t.rotate_key(self._pan_key, mount_point=self._mount))
        return [k.kid for k in published if k.version in retired]

    def _set_floor(self, floor_name: str, version: int) -> None:
        config: dict[str, Any] = {floor_name: version, "mount_point": self._mount}
        self._call(lambda t: t.update_key_configuration(self._jwt_key, **config))

    # --- calls -------------------------------------------------------------------------------------------
    def _call(self, operation: Callable[[Any], T]) -> T:
        """One transit call, logging in first (and once more if the login expired). Failures are logged with
        their details here; the KeysUnavailable raised (a 503 detail a client sees) names only the kind."""
        try:
            used = self._client.token
            if not used:
                self._login(used)
            try:
                return operation(self._client.secrets.transit)
            except hvac.exceptions.Forbidden:
                if not self._settings.vault_role or self._token_is_valid():
                    raise  # refused by policy: logging in again would change nothing
                self._login(used)
                return operation(self._client.secrets.transit)
        except _UNREACHABLE as exc:
            log.warning("vault at %s unreachable: %s", self._settings.vault_addr, type(exc).__name__)
            raise ring.KeysUnavailable("Vault is unreachable; retry later.") from exc
        except hvac.exceptions.VaultError as exc:
            log.warning("vault refused the request: %s", type(exc).__name__)
            raise ring.KeysUnavailable(f"Vault refused the request ({type(exc).__name__}).") from exc

    def _token_is_valid(self) -> bool:
        try:
            self._client.auth.token.lookup_self()  # allowed by Vault's `default` policy
        except hvac.exceptions.Forbidden:
            return False
        return True

    def _login(self, stale: str | None) -> None:
        """Log in, unless another thread already replaced the `stale` token meanwhile (one login, not one per
        thread, when a token expires under load)."""
        with self._login_lock:
            if self._client.token and self._client.token != stale:
                return
            if self._settings.vault_token is not None:
                self._client.token = self._settings.vault_token.get_secret_value()
                return
            if not self._settings.vault_role:
                raise ring.KeysUnavailable("Set GHOSTPAY_VAULT_TOKEN or GHOSTPAY_VAULT_ROLE to log in to Vault.")
            token_path = Path(self._settings.vault_service_account_token_path)
            try:
                service_account_token = token_path.read_text().strip()
            except OSError as exc:
                log.warning("cannot read the ServiceAccount token at %s: %s", token_path, exc)
                raise ring.KeysUnavailable("Cannot read the ServiceAccount token to log in to Vault.") from exc
            self._client.auth.kubernetes.login(
                self._settings.vault_role, service_account_token, mount_point=self._settings.vault_auth_mount
            )

    def close(self) -> None:
        self._client.adapter.close()


def _public_key(key_name: str, version: int, entry: dict[str, Any]) -> ring.PublicKey:
    public_key = serialization.load_pem_public_key(entry["public_key"].encode())
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ring.KeysUnavailable(f"Transit key {key_name} is not an RSA key.")
    return ring.PublicKey(
        kid=f"{key_name}-v{version}-{ring.thumbprint(public_key)[:16]}",
        version=version,
        public_key=public_key,
        created_at=datetime.fromisoformat(entry["creation_time"]),
    )
