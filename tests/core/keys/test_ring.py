"""Rotation rules: which version signs (publish before use) and which versions may be retired."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from jwt.utils import base64url_decode

from ghostpay.core.keys import ring
from ghostpay.core.keys.ring import KeysUnavailable, PublicKey, retired_versions, signing_key, thumbprint

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)

# RFC 7638 §3.1: the example RSA key and its SHA-256 JWK thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
    "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHz"
    "u6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awa"
    "pJzKnqDKgw"
)
RFC7638_E = "AQAB"
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def version(n: int, created_at: datetime) -> PublicKey:
    return PublicKey(kid=f"k-v{n}", version=n, public_key=_PRIVATE.public_key(), created_at=created_at)


def _b64int(value: str) -> int:
    return int.from_bytes(base64url_decode(value.encode()), "big")


# --- signing_key ------------------------------------------------------------------------------------------
def test_the_newest_version_published_at_least_the_activation_delay_ago_signs() -> None:
    published = [version(1, T0), version(2, T0 + DAY), version(3, T0 + 2 * DAY)]
    assert signing_key(published, T0 + 2 * DAY + timedelta(minutes=30), HOUR).version == 2
    assert signing_key(published, T0 + 2 * DAY + HOUR, HOUR).version == 3  # exactly the delay: active
    assert signing_key(published, T0 + 2 * DAY + HOUR - timedelta(microseconds=1), HOUR).version == 2
    assert signing_key(published, T0 + DAY + HOUR, HOUR).version == 2
    assert signing_key(published, T0 + 30 * DAY, HOUR).version == 3


def test_the_order_of_the_list_does_not_matter() -> None:
    published = [version(3, T0 + 2 * DAY), version(1, T0), version(2, T0 + DAY)]
    assert signing_key(published, T0 + DAY + 2 * HOUR, HOUR).version == 2


def test_the_first_key_signs_at_once() -> None:
    only = version(1, T0)
    assert signing_key([only], T0, HOUR) is only
    assert signing_key([only], T0 + timedelta(seconds=1), DAY) is only


def test_an_old_version_keeps_signing_while_its_fresh_successor_waits() -> None:
    published = [version(1, T0), version(2, T0 + DAY)]
    assert signing_key(published, T0 + DAY, HOUR).version == 1
    assert signing_key(published, T0 + DAY + HOUR / 2, HOUR).version == 1


def test_no_published_key_means_no_signing() -> None:
    with pytest.raises(KeysUnavailable):
        signing_key([], T0, HOUR)


# --- retired_versions -------------------------------------------------------------------------------------
def test_a_version_is_retired_once_its_successor_has_signed_for_the_grace_period() -> None:
    published = [version(1, T0), version(2, T0 + DAY)]
    successor_active = T0 + DAY + HOUR
    grace = 2 * HOUR
    assert retired_versions(published, successor_active, HOUR, grace) == []
    assert retired_versions(published, successor_active + grace - timedelta(microseconds=1), HOUR, grace) == []
    assert retired_versions(published, successor_active + grace, HOUR, grace) == [1]  # exactly: retired


def test_age_alone_does_not_retire_a_version() -> None:
    published = [version(1, T0 - 365 * DAY), version(2, T0)]
    assert retired_versions(published, T0 + HOUR, HOUR, HOUR) == []


def test_the_newest_version_is_never_retired() -> None:
    assert retired_versions([version(1, T0)], T0 + 1000 * DAY, timedelta(0), timedelta(0)) == []
    published = [version(1, T0), version(2, T0 + DAY), version(3, T0 + 2 * DAY)]
    assert retired_versions(published, T0 + 1000 * DAY, HOUR, HOUR) == [1, 2]


def test_several_versions_may_retire_at_once_and_only_those_past_their_grace() -> None:
    published = [version(n, T0 + (n - 1) * DAY) for n in range(1, 6)]  # v5 published at T0 + 4 days
    # v4 (successor of v3) activated at T0 + 3d + 1h; with a 12h grace v3 retires at T0 + 3d + 13h.
    now = T0 + 3 * DAY + 13 * HOUR
    assert retired_versions(published, now, HOUR, 12 * HOUR) == [1, 2, 3]
    assert retired_versions(list(reversed(published)), now, HOUR, 12 * HOUR) == [1, 2, 3]


# --- thumbprint and JWK -----------------------------------------------------------------------------------
def test_the_thumbprint_is_rfc_7638s() -> None:
    public_key = rsa.RSAPublicNumbers(_b64int(RFC7638_E), _b64int(RFC7638_N)).public_key()
    assert thumbprint(public_key) == RFC7638_THUMBPRINT


def test_different_keys_have_different_thumbprints() -> None:
    assert thumbprint(_PRIVATE.public_key()) != thumbprint(_OTHER_PRIVATE.public_key())


def test_the_jwk_of_a_published_version() -> None:
    key = PublicKey(kid="local-v7-abc", version=7, public_key=_PRIVATE.public_key(), created_at=T0)
    jwk = key.jwk()
    assert jwk["kid"] == "local-v7-abc"
    assert jwk["alg"] == "RS256" == ring.SIGNING_ALG
    assert jwk["use"] == "sig"
    assert jwk["kty"] == "RSA"
    numbers = _PRIVATE.public_key().public_numbers()
    assert _b64int(jwk["n"]) == numbers.n
    assert _b64int(jwk["e"]) == numbers.e == 65537
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()  # nothing private
    rebuilt = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
    assert isinstance(rebuilt, rsa.RSAPublicKey) and rebuilt.public_numbers() == numbers


# --- a property ---------------------------------------------------------------------------------------------
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=8),
    now_offset=st.integers(min_value=-(10**6), max_value=10**7),
    delay=st.integers(min_value=0, max_value=10**6),
    grace=st.integers(min_value=0, max_value=10**6),
    order=st.randoms(use_true_random=False),
)
def test_the_signing_version_is_never_a_retired_one(
    gaps: list[int], now_offset: int, delay: int, grace: int, order: random.Random
) -> None:
    created, published = T0, []
    for n, gap in enumerate(gaps, start=1):
        created += timedelta(seconds=gap)
        published.append(version(n, created))
    order.shuffle(published)
    now = T0 + timedelta(seconds=now_offset)
    signer = signing_key(published, now, timedelta(seconds=delay))
    assert signer.version not in retired_versions(published, now, timedelta(seconds=delay), timedelta(seconds=grace))
