"""The text form of a wrapped data key, `<backend>:v<version>:<base64>`: written, read back, malformed refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghostpay.core.keys import wrapping
from ghostpay.core.keys.wrapping import MalformedWrappedKey


def test_the_format_is_vault_transits() -> None:
    assert wrapping.encode("vault", 3, b"\x00\xff") == b"vault:v3:AP8="
    assert wrapping.encode("local", 12, b"ABC") == b"local:v12:QUJD"


@given(
    backend=st.from_regex(r"\A[a-z]{1,12}\Z"),
    version=st.integers(min_value=0, max_value=10**12),
    sealed=st.binary(min_size=1, max_size=200),
)
def test_encode_then_decode_gives_back_the_version_and_the_bytes(backend: str, version: int, sealed: bytes) -> None:
    wrapped = wrapping.encode(backend, version, sealed)
    assert wrapping.decode(backend, wrapped) == (version, sealed)
    assert wrapping.version_of(wrapped) == version


def test_another_backends_wrapping_is_refused_by_name() -> None:
    wrapped = wrapping.encode("vault", 2, b"sealed")
    with pytest.raises(MalformedWrappedKey, match="vault backend, not local"):
        wrapping.decode("local", wrapped)
    assert wrapping.version_of(wrapped) == 2  # the version is readable whatever the backend


MALFORMED = [
    b"",
    b"local",
    b"local:v1",
    b"local:v1:",
    b"local:1:QUJD",
    b"local:v:QUJD",
    b"local:vx:QUJD",
    b"local:v-1:QUJD",
    b"LOCAL:v1:QUJD",
    b":v1:QUJD",
    b"local::v1:QUJD",
    b" local:v1:QUJD",
    b"local:v1:QU JD",
    b"local:v1:QUJD!",
    b"local:v1:QUJD:extra",
    b"local:v1:QU_JD-",  # base64url is not this format's alphabet
    b"loc4l:v1:QUJD",
]


@pytest.mark.parametrize("wrapped", MALFORMED)
def test_malformed_wrapped_keys_are_refused(wrapped: bytes) -> None:
    with pytest.raises(MalformedWrappedKey):
        wrapping.version_of(wrapped)
    with pytest.raises(MalformedWrappedKey):
        wrapping.decode("local", wrapped)


@pytest.mark.parametrize("wrapped", [b"local:v1:QUJ", b"local:v1:A", b"local:v1:QUJDR"])
def test_a_payload_that_is_not_valid_base64_is_a_malformed_wrapped_key(wrapped: bytes) -> None:
    """Matches the pattern, but its payload cannot be base64 (bad length or padding): still malformed, and
    callers that catch MalformedWrappedKey must see it as such, not as a stray binascii.Error."""
    with pytest.raises(MalformedWrappedKey):
        wrapping.decode("local", wrapped)
