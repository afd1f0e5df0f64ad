"""Card numbers: Luhn-valid, 16 digits, under the configured BIN; the Luhn check itself against known vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghostpay.cards import pan

KNOWN_VALID = ["4111111111111111", "5555555555554444", "378282246310005", "79927398713"]
KNOWN_INVALID = ["4111111111111112", "79927398710", "1234567812345678"]


@pytest.mark.parametrize("number", KNOWN_VALID)
def test_known_valid_numbers_pass(number: str) -> None:
    assert pan.is_luhn_valid(number)


@pytest.mark.parametrize("number", KNOWN_INVALID)
def test_known_invalid_numbers_fail(number: str) -> None:
    assert not pan.is_luhn_valid(number)


@given(st.from_regex(r"\A[0-9]{6,8}\Z"))
def test_generated_pans_are_luhn_valid_under_the_bin(bin_prefix: str) -> None:
    number = pan.generate_pan(bin_prefix)
    assert len(number) == 16 and number.isdigit()
    assert number.startswith(bin_prefix)
    assert pan.is_luhn_valid(number)


@given(st.from_regex(r"\A[0-9]{15}\Z"), st.integers(min_value=1, max_value=9))
def test_changing_the_check_digit_breaks_the_check(partial: str, shift: int) -> None:
    good = partial + str(pan.luhn_check_digit(partial))
    bad = partial + str((int(good[-1]) + shift) % 10)
    assert pan.is_luhn_valid(good) and not pan.is_luhn_valid(bad)


def test_cvvs_are_three_digits() -> None:
    assert all(len(c) == 3 and c.isdigit() for c in (pan.generate_cvv() for _ in range(200)))
