"""Attacks on bearer tokens, and the shape of what the auth service issues and publishes.

Every forged, tampered, expired or malformed token must be refused with 401 `application/problem+json` and a
`WWW-Authenticate: Bearer` challenge, on a merchant route and on the admin-only route (a forged admin token
must not create clients). Also: the JWKS carries public RSA keys only, issued tokens carry the contract's
claims, and `POST /auth/token` refuses wrong credentials and accepts the OAuth 2.0 form body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ghostpay.core.keys.local import LocalKeyStore
from ghostpay.core.settings import Settings
from tests.conftest import ADMIN_ID, ADMIN_SECRET, Api
from tests.support.procs import KEYS_PASSPHRASE

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


# --- building tokens by hand ---------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def hs256_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """PyJWT refuses to HMAC-sign with a PEM, which is exactly what the key-confusion attack needs."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()


@dataclass(frozen=True)
class Ctx:
    """What an attacker (or the positive control) has to work with."""

    key: SigningKey  # the service's real signing key, from the key store
    foreign_key: rsa.RSAPrivateKey  # someone else's RSA key
    public_pem: bytes  # the service's public key, as published
    merchant_token: str  # a genuine token, issued by POST /auth/token
    merchant_id: str
    issuer: str
    audience: str

    def claims(self, **changes: Any) -> dict[str, Any]:
        """A complete, valid merchant claim set; `changes` override, a value of None removes the claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.merchant_id,
            "role": "merchant",
            "merchant_id": self.merchant_id,
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_hex(16),
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], *, kid: Any = "real", alg: str = "RS256", key: Any = None) -> str:
        """Sign with the real key (or `key`); `kid="real"` uses the real kid, None omits the header."""
        headers: dict[str, Any] = {} if kid is None else {"kid": self.key.kid if kid == "real" else kid}
        return jwt.encode(claims, key or self.key.private_key, algorithm=alg, headers=headers)


def _rs256_by_hand(ctx: Ctx, header: dict[str, Any]) -> str:
    """RS256 with the real key over any header (PyJWT will not encode a `kid` that is not a string)."""
    signing_input = f"{b64url_json({'alg': 'RS256', 'typ': 'JWT', **header})}.{b64url_json(ctx.claims())}"
    rsa_alg = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
    return f"{signing_input}.{b64url(rsa_alg.sign(signing_input.encode(), ctx.key.private_key))}"


def _unsigned(ctx: Ctx) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": ctx.key.kid}
    return f"{b64url_json(header)}.{b64url_json(ctx.claims(role='admin'))}."


def _key_confusion(ctx: Ctx) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": ctx.key.kid}
    return hs256_token(header, ctx.claims(role="admin"), ctx.public_pem)


def _tampered(ctx: Ctx, **changes: Any) -> str:
    header, payload, signature = ctx.merchant_token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims.update(changes)
    return f"{header}.{b64url_json(claims)}.{signature}"


def _foreign_with_embedded_jwk(ctx: Ctx) -> str:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(ctx.foreign_key.public_key(), as_dict=True)
    return jwt.encode(
        ctx.claims(role="admin"), ctx.foreign_key, algorithm="RS256", headers={"kid": ctx.key.kid, "jwk": jwk}
    )


REFUSED_TOKENS: dict[str, Callable[[Ctx], str]] = {
    "alg none, unsigned": _unsigned,
    "alg none, signature of a real token kept": lambda c: _unsigned(c) + c.merchant_token.split(".")[2],
    "HS256 keyed with the RSA public key PEM": _key_confusion,
    "RS512 with the real key (alg is pinned per key)": lambda c: c.sign(c.claims(), alg="RS512"),
    "foreign RSA key, known kid": lambda c: c.sign(c.claims(), key=c.foreign_key),
    "foreign RSA key, known kid, own jwk embedded": _foreign_with_embedded_jwk,
    "tampered: role changed to admin": lambda c: _tampered(c, role="admin"),
    "tampered: merchant_id changed": lambda c: _tampered(c, merchant_id="cli_someone_else"),
    "tampered: exp extended": lambda c: _tampered(c, exp=int(time.time()) + 86400),
    "signature stripped": lambda c: c.merchant_token.rsplit(".", 1)[0] + ".",
    "expired": lambda c: c.sign(c.claims(iat=int(time.time()) - 3600, exp=int(time.time()) - 60)),
    "not yet valid (nbf in the future)": lambda c: c.sign(c.claims(nbf=int(time.time()) + 3600)),
    "wrong aud": lambda c: c.sign(c.claims(aud="someone-else")),
    "aud list without ours": lambda c: c.sign(c.claims(aud=["a", "b"])),
    "wrong iss": lambda c: c.sign(c.claims(iss="https://evil.example")),
    "missing kid": lambda c: c.sign(c.claims(), kid=None),
    "unknown kid": lambda c: c.sign(c.claims(), kid="key_does_not_exist"),
    "kid path traversal": lambda c: c.sign(c.claims(), kid="../../signing/" + c.key.kid),
    "kid not a string": lambda c: _rs256_by_hand(c, {"kid": 12345}),
    "kid a list holding the real kid": lambda c: _rs256_by_hand(c, {"kid": [c.key.kid]}),
    "missing jti": lambda c: c.sign(c.claims(jti=None)),
    "missing role": lambda c: c.sign(c.claims(role=None)),
    "missing sub": lambda c: c.sign(c.claims(sub=None)),
    "missing exp": lambda c: c.sign(c.claims(exp=None)),
    "missing iat": lambda c: c.sign(c.claims(iat=None)),
    "missing aud": lambda c: c.sign(c.claims(aud=None)),
    "missing iss": lambda c: c.sign(c.claims(iss=None)),
    "unknown role": lambda c: c.sign(c.claims(role="superuser")),
    "merchant role without merchant_id": lambda c: c.sign(c.claims(merchant_id=None)),
    "user role without user_id": lambda c: c.sign(c.claims(role="user", merchant_id=None)),
    "garbage": lambda c: "garbage",
    "three garbage segments": lambda c: "a.b.c",
    "empty segments": lambda c: "..",
    "header only": lambda c: b64url_json({"alg": "RS256", "kid": c.key.kid}),
    "header not JSON": lambda c: f"{b64url(b'not json')}.{b64url_json(c.claims())}.sig",
    "very long": lambda c: "x" * 6000,
}

ROUTES = [("GET", "/cards", None), ("POST", "/auth/clients", {"name": "forged", "role": "admin"})]


@pytest.fixture(scope="module")
async def ctx(api: Api, keys_dir: Path, settings: Settings) -> Ctx:
    store = LocalKeyStore(keys_dir, KEYS_PASSPHRASE).open()
    public = store.public_keys()[-1]
    key = SigningKey(public.kid, store.private_key(public.kid))
    merchant = await api.merchant()
    return Ctx(
        key=key,
        foreign_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        public_pem=key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        merchant_token=merchant["headers"]["Authorization"].removeprefix("Bearer "),
        merchant_id=merchant["client_id"],
        issuer=settings.issuer,
        audience=settings.audience,
    )


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers.get("www-authenticate", "").startswith("Bearer")
    problem = response.json()
    assert problem["status"] == 401 and problem["code"] == "unauthorized"


# --- refusals --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
@pytest.mark.parametrize("attack", list(REFUSED_TOKENS))
async def test_a_bad_token_is_refused_with_401(
    api: Api, ctx: Ctx, attack: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    token = REFUSED_TOKENS[attack](ctx)
    response = await api.http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert_unauthorized(response)


def test_the_key_confusion_token_is_well_formed(ctx: Ctx) -> None:
    """Guards the attack itself: the forged HS256 token verifies as HS256 under the PEM, so the refusal above
    comes from the service pinning RS256, not from a broken forgery."""
    token = _key_confusion(ctx)
    header_and_payload, signature = token.rsplit(".", 1)
    expected = hmac.new(ctx.public_pem, header_and_payload.encode(), hashlib.sha256).digest()
    assert b64url_decode(signature) == expected
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": ctx.key.kid}


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token {token}", "{token}", "Bearer {token}x"],
)
async def test_a_malformed_authorization_header_is_refused(api: Api, ctx: Ctx, authorization: str) -> None:
    value = authorization.format(token=ctx.merchant_token)
    assert_unauthorized(await api.http.get("/cards", headers={"Authorization": value}))


async def test_no_token_is_refused(api: Api) -> None:
    assert_unauthorized(await api.http.get("/cards"))


# --- positive controls -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda c: c.merchant_token, id="issued by POST /auth/token"),
        pytest.param(lambda c: c.sign(c.claims()), id="hand-signed with the real key"),
        pytest.param(lambda c: _rs256_by_hand(c, {"kid": c.key.kid}), id="built by hand with the real key"),
    ],
)
async def test_a_correctly_signed_token_is_accepted(api: Api, ctx: Ctx, make: Callable[[Ctx], str]) -> None:
    headers = {"Authorization": f"Bearer {make(ctx)}"}
    response = await api.http.get("/cards", headers=headers)
    assert response.status_code == 200, response.text
    assert all(card["merchant_id"] == ctx.merchant_id for card in response.json()["data"])
    # ... but a merchant token still may not act as admin.
    forbidden = await api.http.post("/auth/clients", json={"name": "x", "role": "admin"}, headers=headers)
    assert forbidden.status_code == 403


# --- JWKS and the claims of issued tokens ----------------------------------------------------------------


async def test_jwks_publishes_public_rsa_signing_keys_only(api: Api, ctx: Ctx) -> None:
    response = await api.http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys, "the JWKS is empty"
    for jwk in keys:
        assert isinstance(jwk.get("kid"), str) and jwk["kid"]
        assert (jwk.get("kty"), jwk.get("alg"), jwk.get("use")) == ("RSA", "RS256", "sig")
        assert {"n", "e"} <= jwk.keys()
        assert not PRIVATE_JWK_MEMBERS & jwk.keys(), f"private key material published: {jwk.keys()}"
    assert len({jwk["kid"] for jwk in keys}) == len(keys)
    published = {jwk["kid"]: jwk for jwk in keys}
    assert ctx.key.kid in published
    # The published key is the real one: it verifies a genuine token.
    public = jwt.PyJWK(published[ctx.key.kid]).key
    jwt.decode(ctx.merchant_token, public, algorithms=["RS256"], audience=ctx.audience, issuer=ctx.issuer)


async def _client_of_role(api: Api, role: str) -> tuple[str, str, dict[str, Any]]:
    if role == "admin":
        return ADMIN_ID, ADMIN_SECRET, {}
    client = await api.new_client(role, f"user_{secrets.token_hex(4)}" if role == "user" else None)
    return client["client_id"], client["client_secret"], client


@pytest.mark.parametrize("role", ["admin", "merchant", "user"])
async def test_issued_tokens_carry_the_contract_claims(api: Api, settings: Settings, role: str) -> None:
    client_id, secret, client = await _client_of_role(api, role)
    response = await api.http.post("/auth/token", json={"client_id": client_id, "client_secret": secret})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    token = body["access_token"]

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and isinstance(header["kid"], str)
    jwks = (await api.http.get("/.well-known/jwks.json")).json()["keys"]
    jwk = next(k for k in jwks if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="ghostpay", issuer=settings.issuer)
    assert claims["aud"] == "ghostpay" and claims["iss"] == settings.issuer
    assert claims["sub"] == client_id and claims["role"] == role
    assert isinstance(claims["iat"], int) and claims["exp"] - claims["iat"] == 900
    assert abs(claims["iat"] - time.time()) < 60
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    if role == "merchant":
        assert claims["merchant_id"] == client_id == client["merchant_id"]
        assert "user_id" not in claims
    elif role == "user":
        assert claims["user_id"] == client["user_id"]
        assert "merchant_id" not in claims
    else:
        assert "merchant_id" not in claims and "user_id" not in claims

    again = await api.http.post("/auth/token", json={"client_id": client_id, "client_secret": secret})
    assert jwt.decode(again.json()["access_token"], options={"verify_signature": False})["jti"] != claims["jti"]


# --- POST /auth/token --------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["json", "form"])
@pytest.mark.parametrize("who", ["wrong secret", "unknown client id", "empty-ish secret"])
async def test_wrong_credentials_get_401(api: Api, who: str, encoding: str) -> None:
    merchant = await api.merchant()
    credentials = {
        "wrong secret": (merchant["client_id"], merchant["client_secret"] + "x"),
        "unknown client id": ("cli_" + secrets.token_hex(8), merchant["client_secret"]),
        "empty-ish secret": (merchant["client_id"], " "),
    }[who]
    fields = {"client_id": credentials[0], "client_secret": credentials[1]}
    if encoding == "json":
        response = await api.http.post("/auth/token", json=fields)
    else:
        response = await api.http.post("/auth/token", data={"grant_type": "client_credentials", **fields})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "access_token" not in response.json()


async def test_form_encoded_client_credentials_grant_works(api: Api) -> None:
    merchant = await api.merchant()
    form = {
        "grant_type": "client_credentials",
        "client_id": merchant["client_id"],
        "client_secret": merchant["client_secret"],
    }
    response = await api.http.post("/auth/token", data=form)
    assert response.status_code == 200, response.text
    assert response.request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    listed = await api.http.get("/cards", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert listed.status_code == 200


async def test_form_with_another_grant_type_is_refused(api: Api) -> None:
    merchant = await api.merchant()
    form = {"grant_type": "password", "client_id": merchant["client_id"], "client_secret": merchant["client_secret"]}
    response = await api.http.post("/auth/token", data=form)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "access_token" not in response.json()
