"""The verifier's cache of verified tokens never outlives the token's expiry or its signing key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ghostpay.core.errors import Unauthorized
from ghostpay.core.keystore import LocalKeyStore
from ghostpay.core.tokens import Principal, TokenVerifier, issue_token

MERCHANT = Principal("cli_m", "merchant", merchant_id="cli_m")


def test_a_cached_token_expires_on_time(tmp_path: Path) -> None:
    store = LocalKeyStore(tmp_path).open()
    verifier = TokenVerifier(store.verification_keys, "ghostpay", "ghostpay")
    token = issue_token(store.current_signing_key(), MERCHANT, "ghostpay", "ghostpay", ttl=1)
    assert verifier.verify(token) == MERCHANT
    assert verifier.verify(token) == MERCHANT  # from the cache
    time.sleep(1.1)
    with pytest.raises(Unauthorized):
        verifier.verify(token)


def test_a_cached_token_dies_with_its_key(tmp_path: Path) -> None:
    store = LocalKeyStore(tmp_path).open()
    published = store.verification_keys()
    verifier = TokenVerifier(lambda: published, "ghostpay", "ghostpay")
    token = issue_token(store.current_signing_key(), MERCHANT, "ghostpay", "ghostpay", ttl=600)
    assert verifier.verify(token) == MERCHANT
    published = []  # the key is retired
    with pytest.raises(Unauthorized):
        verifier.verify(token)


def test_the_cache_is_bounded(tmp_path: Path) -> None:
    store = LocalKeyStore(tmp_path).open()
    verifier = TokenVerifier(store.verification_keys, "ghostpay", "ghostpay")
    verifier.CACHE_SIZE = 3
    tokens = [issue_token(store.current_signing_key(), MERCHANT, "ghostpay", "ghostpay", ttl=600) for _ in range(5)]
    for token in tokens:
        verifier.verify(token)
    assert len(verifier._verified) == 3 and tokens[-1] in verifier._verified
