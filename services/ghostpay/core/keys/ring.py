"""Which key version signs and which versions may be retired: pure decisions over published versions.

Rotation is "publish before use": a new version is published (in the JWKS) at once, but becomes the signing
version only `activation_delay` seconds later, once every verifier has had time to refresh its copy. A
version stops signing when its successor activates; a token it signed lives at most the token lifetime after
that, so the version is retired `grace` seconds (never less than the token lifetime) after its successor
activated. The same rules drive both backends (local files and Vault transit).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from ghostpay.core.errors import DomainError

SIGNING_ALG = "RS256"


class KeysUnavailable(DomainError):
    """The key backend (Vault) cannot be reached or refused us: tokens cannot be issued right now."""

    status, code, title = 503, "keys_unavailable", "Signing keys unavailable"


@dataclass(frozen=True)
class PublicKey:
    """One published version of the signing key."""

    kid: str
    version: int
    public_key: rsa.RSAPublicKey
    created_at: datetime
    alg: str = SIGNING_ALG

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256 over the required members in lexical order), base64url."""
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return jwt.utils.base64url_encode(hashlib.sha256(canonical.encode()).digest()).decode()


def signing_key(published: list[PublicKey], now: datetime, activation_delay: timedelta) -> PublicKey:
    """The newest version published at least `activation_delay` ago; the oldest if none is that old yet
    (the very first key signs at once: there is nothing else)."""
    if not published:
        raise KeysUnavailable("No signing key is published.")
    by_version = sorted(published, key=lambda k: k.version)
    active = [k for k in by_version if k.created_at + activation_delay <= now]
    return active[-1] if active else by_version[0]


def retired_versions(
    published: list[PublicKey], now: datetime, activation_delay: timedelta, grace: timedelta
) -> list[int]:
    """Versions whose successor started signing more than `grace` ago: no live token can carry them."""
    by_version = sorted(published, key=lambda k: k.version)
    return [
        older.version
        for older, successor in itertools.pairwise(by_version)
        if successor.created_at + activation_delay + grace <= now
    ]
