"""The Luhn (mod 10) check used by card numbers: by the cards service to make them, by log redaction to
recognise them."""

from __future__ import annotations


def check_digit(partial: str) -> int:
    """The digit that makes `partial + digit` pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(partial)):
        digit = int(char)
        if position % 2 == 0:  # doubled: these sit at odd positions once the check digit is appended
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return (10 - total % 10) % 10


def is_valid(number: str) -> bool:
    return len(number) > 1 and number.isdigit() and check_digit(number[:-1]) == int(number[-1])
