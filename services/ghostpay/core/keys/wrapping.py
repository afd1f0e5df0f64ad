"""The text form of a wrapped PAN data key: `<backend>:v<version>:<base64>`, as Vault transit writes it
(`vault:v3:…`). The version says which key-encryption key wrapped it, so a rotation knows what to rewrap."""

from __future__ import annotations

import base64
import binascii
import re

_WRAPPED = re.compile(rb"^([a-z]+):v([0-9]+):([A-Za-z0-9+/=]+)$")


class MalformedWrappedKey(ValueError):
    """Not a wrapped key this backend wrote."""


def encode(backend: str, version: int, sealed: bytes) -> bytes:
    return f"{backend}:v{version}:".encode() + base64.b64encode(sealed)


def _match(wrapped: bytes) -> re.Match[bytes]:
    match = _WRAPPED.fullmatch(wrapped)
    if match is None:
        raise MalformedWrappedKey("A wrapped data key must look like <backend>:v<version>:<base64>.")
    return match


def version_of(wrapped: bytes) -> int:
    return int(_match(wrapped)[2])


def decode(backend: str, wrapped: bytes) -> tuple[int, bytes]:
    match = _match(wrapped)
    if match[1].decode() != backend:
        raise MalformedWrappedKey(f"This data key was wrapped by the {match[1].decode()} backend, not {backend}.")
    try:
        return int(match[2]), base64.b64decode(match[3], validate=True)
    except binascii.Error as exc:
        raise MalformedWrappedKey("The wrapped data key is not valid base64.") from exc
