"""Money rules: ISO 4217 alpha-3 currencies and integer amounts in each currency's minor unit.

The exponent comes from the ISO 4217 table (`iso4217` package), never a hard-coded 100.
Called by the request models of cards and charges.
"""

from __future__ import annotations

import functools

import iso4217

# The largest amount one card may carry, in major units; the minor-unit cap follows from the exponent.
MAX_MAJOR_UNITS = 1_000_000


class MoneyError(ValueError):
    """A currency or amount a payment cannot carry."""


@functools.lru_cache(maxsize=512)  # on every charge; an unknown code raises, which is not cached
def minor_unit_exponent(code: str) -> int:
    """Digits after the decimal point for `code`; raises MoneyError for unknown or non-monetary codes."""
    try:
        currency = iso4217.Currency(code)
    except ValueError as exc:
        raise MoneyError(f"{code!r} is not an ISO 4217 currency code") from exc
    if currency.exponent is None:
        raise MoneyError(f"{code!r} is not a currency that can be paid with (no minor unit)")
    return int(currency.exponent)


def normalize_currency(code: str) -> str:
    """Upper-cased, validated alpha-3 code."""
    if not isinstance(code, str) or len(code) != 3 or not code.isascii() or not code.isalpha():
        raise MoneyError("currency must be a three-letter ISO 4217 code such as 'USD'")
    upper = code.upper()
    minor_unit_exponent(upper)
    return upper


def max_amount(code: str) -> int:
    return MAX_MAJOR_UNITS * int(10 ** minor_unit_exponent(code))


def check_amount(amount: int, currency: str) -> int:
    """A positive integer no larger than the cap for `currency`."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MoneyError("amount must be an integer number of minor units")
    if amount <= 0:
        raise MoneyError("amount must be greater than zero")
    cap = max_amount(currency)
    if amount > cap:
        raise MoneyError(f"amount must be at most {cap} {currency} minor units")
    return int(amount)
