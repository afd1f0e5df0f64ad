"""Envelope encryption of card numbers: AES-256-GCM under a data key, the data key wrapped by the key store.

The card id is authenticated data, so a ciphertext moved to another card's row fails to decrypt. The
look-up hash is an HMAC with a key from the key store, so it cannot be reversed by enumerating PANs.
Pure functions over keys the cards service loads.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


@dataclass(frozen=True)
class DataKey:
    key_id: str
    key: bytes


def new_data_key_material() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal_pan(data_key: DataKey, card_id: str, pan: str) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(data_key.key).encrypt(nonce, pan.encode(), card_id.encode())


def unseal_pan(data_key: DataKey, card_id: str, sealed: bytes) -> str:
    return AESGCM(data_key.key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], card_id.encode()).decode()


def pan_lookup_hash(lookup_key: bytes, pan: str) -> bytes:
    return hmac.new(lookup_key, pan.encode(), hashlib.sha256).digest()
