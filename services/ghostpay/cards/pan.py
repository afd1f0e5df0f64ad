"""Card numbers: Luhn-valid PANs under the configured BIN, and CVVs, drawn from `secrets`. Pure functions."""

from __future__ import annotations

import secrets

from ghostpay.core import luhn

PAN_LENGTH = 16


luhn_check_digit = luhn.check_digit
is_luhn_valid = luhn.is_valid


def generate_pan(bin_prefix: str) -> str:
    body_length = PAN_LENGTH - len(bin_prefix) - 1
    body = "".join(secrets.choice("0123456789") for _ in range(body_length))
    partial = bin_prefix + body
    return partial + str(luhn_check_digit(partial))


def generate_cvv() -> str:
    return f"{secrets.randbelow(1000):03d}"
