"""Card numbers: Luhn-valid PANs under the configured BIN, and CVVs, drawn from `secrets`. Pure functions."""

from __future__ import annotations

import secrets

PAN_LENGTH = 16


def luhn_check_digit(partial: str) -> int:
    """The digit that makes `partial + digit` pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(partial)):
        digit = int(char)
        if position % 2 == 0:  # doubled: these sit at odd positions once the check digit is appended
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return (10 - total % 10) % 10


def is_luhn_valid(number: str) -> bool:
    return len(number) > 1 and number.isdigit() and luhn_check_digit(number[:-1]) == int(number[-1])


def generate_pan(bin_prefix: str) -> str:
    body_length = PAN_LENGTH - len(bin_prefix) - 1
    body = "".join(secrets.choice("0123456789") for _ in range(body_length))
    partial = bin_prefix + body
    return partial + str(luhn_check_digit(partial))


def generate_cvv() -> str:
    return f"{secrets.randbelow(1000):03d}"
