"""Money validation: ISO 4217 codes, exponents from the table, integer minor units within the cap."""

from __future__ import annotations

import iso4217
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghostpay.core import money
from ghostpay.core.api_models import MoneyModel

PAYABLE = sorted(c.code for c in iso4217.Currency if c.exponent is not None)
NOT_PAYABLE = sorted(c.code for c in iso4217.Currency if c.exponent is None)


@given(st.sampled_from(PAYABLE), st.booleans())
def test_every_payable_code_is_accepted_in_any_case(code: str, lower: bool) -> None:
    assert money.normalize_currency(code.lower() if lower else code) == code


@given(st.text(min_size=0, max_size=6))
def test_arbitrary_text_is_a_currency_only_if_iso_lists_it(text: str) -> None:
    try:
        result = money.normalize_currency(text)
    except money.MoneyError:
        assert text.upper() not in PAYABLE or len(text) != 3
    else:
        assert result in PAYABLE


@pytest.mark.parametrize("code", NOT_PAYABLE)
def test_codes_without_a_minor_unit_are_refused(code: str) -> None:
    with pytest.raises(money.MoneyError):
        money.normalize_currency(code)


@pytest.mark.parametrize(("code", "cap"), [("USD", 100_000_000), ("JPY", 1_000_000), ("BHD", 1_000_000_000)])
def test_the_cap_follows_the_exponent(code: str, cap: int) -> None:
    assert money.max_amount(code) == cap


@given(st.sampled_from(PAYABLE), st.integers())
def test_amounts_are_positive_integers_up_to_the_cap(code: str, amount: int) -> None:
    valid = 0 < amount <= money.max_amount(code)
    try:
        MoneyModel(amount=amount, currency=code)
    except ValueError:
        assert not valid
    else:
        assert valid


@pytest.mark.parametrize("amount", [1.5, 10.0, "100", True, None])
def test_amounts_that_are_not_integers_are_refused(amount: object) -> None:
    with pytest.raises(ValueError):
        MoneyModel(amount=amount, currency="USD")  # type: ignore[arg-type]
