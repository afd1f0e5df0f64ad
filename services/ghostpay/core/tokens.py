"""JWT access tokens: issued by the auth service, verified by every service.

Strict by construction: the algorithm is pinned per key (never taken from the token), `kid` is required and
must be a published key, and `aud`, `iss`, `exp`, `iat`, `sub`, `jti` and `role` are required. `iat` and `nbf`
get a small clock-skew leeway (`GHOSTPAY_TOKEN_LEEWAY_SECONDS`, 30 s): a verifier a little behind the issuer
still accepts a fresh token; `exp` gets none, so no token outlives its issued lifetime. Keys come
from the `KeyCache`; signing goes through the key backend (the private key may never leave Vault), so a token
is assembled here from its signing input and the backend's signature.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.utils import base64url_encode

from ghostpay.core.errors import Unauthorized
from ghostpay.core.keys.cache import KeyCache
from ghostpay.core.settings import Role

REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti", "role"]
_ROLES = ("admin", "merchant", "user")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a client with a role, and the merchant or user it acts for."""

    client_id: str
    role: Role
    merchant_id: str | None = None
    user_id: str | None = None


def claims_for(principal: Principal, issuer: str, audience: str, ttl: int) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": principal.client_id,
        "role": principal.role,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    if principal.merchant_id:
        claims["merchant_id"] = principal.merchant_id
    if principal.user_id:
        claims["user_id"] = principal.user_id
    return claims


def _segment(value: dict[str, Any]) -> bytes:
    return base64url_encode(json.dumps(value, separators=(",", ":")).encode())


async def issue_token(keys: KeyCache, claims: dict[str, Any]) -> str:
    """A compact JWS signed by the current signing version (raises `KeysUnavailable` if it cannot sign)."""
    key = keys.signing_key()
    signing_input = _segment({"alg": key.alg, "kid": key.kid, "typ": "JWT"}) + b"." + _segment(claims)
    signature = await keys.call(keys.backend.sign, key.kid, signing_input)
    return (signing_input + b"." + base64url_encode(signature)).decode()


class TokenVerifier:
    """Verifies tokens against the published keys in the `KeyCache` (looked up by `kid`).

    A token verified once is remembered (by its exact text, until its `exp` and only while its key is still
    published): a client sends the same token for minutes, and parsing and checking it costs more than the rest
    of a charge's Python work. Only successes are cached, so a bad token is checked in full every time.
    """

    CACHE_SIZE = 10_000

    def __init__(self, keys: KeyCache, issuer: str, audience: str, leeway_seconds: float = 30) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._verified: dict[str, tuple[Principal, float, str]] = {}

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires_at, kid = cached
            if time.time() < expires_at and self._keys.get(kid) is not None:
                return principal
            del self._verified[token]
        principal, expires_at, kid = await self._verify_fully(token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # oldest first: dicts keep insertion order
        self._verified[token] = (principal, expires_at, kid)
        return principal

    async def _verify_fully(self, token: str) -> tuple[Principal, float, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("The bearer token is malformed.") from exc
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("The bearer token has no key id (kid).")
        key = self._keys.get(kid) or await self._keys.refresh_for_unknown_kid(kid)
        if key is None:
            raise Unauthorized("The bearer token is signed with an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.alg],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=self._leeway,  # PyJWT applies it to exp as well: exp is checked strictly below
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The bearer token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("The bearer token is not valid.") from exc
        if float(claims["exp"]) <= time.time():
            raise Unauthorized("The bearer token has expired.")
        return _principal_from_claims(claims), float(claims["exp"]), kid


def _principal_from_claims(claims: dict[str, Any]) -> Principal:
    role = claims["role"]
    if role not in _ROLES or not isinstance(claims["sub"], str):
        raise Unauthorized("The bearer token carries an unknown role.")
    merchant_id = claims.get("merchant_id")
    user_id = claims.get("user_id")
    if role == "merchant" and not isinstance(merchant_id, str):
        raise Unauthorized("A merchant token must carry merchant_id.")
    if role == "user" and not isinstance(user_id, str):
        raise Unauthorized("A user token must carry user_id.")
    return Principal(claims["sub"], role, merchant_id, user_id)
