"""Request and response pieces every service's API shares: money fields, list pages, query parameters."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, model_validator

from ghostpay.core import money


def _currency(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return money.normalize_currency(value)
        except money.MoneyError as exc:
            raise ValueError(str(exc)) from exc
    return value


Currency = Annotated[
    str,
    BeforeValidator(_currency),
    Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 alpha-3 code, e.g. USD", examples=["USD"]),
]
MinorUnits = Annotated[
    int, Field(strict=True, gt=0, description="Amount in the currency's minor unit (cents for USD, yen for JPY)")
]


class MoneyModel(BaseModel):
    """A body with `amount` and `currency`: the amount is checked against the currency's cap."""

    amount: MinorUnits
    currency: Currency

    @model_validator(mode="after")
    def _amount_fits_currency(self) -> MoneyModel:
        try:
            money.check_amount(self.amount, self.currency)
        except money.MoneyError as exc:
            raise ValueError(str(exc)) from exc
        return self


def _storable(value: str) -> str:
    """PostgreSQL text holds neither U+0000 nor an unpaired surrogate (JSON's `"\\ud800"` decodes to one): refused
    here as invalid input, not left to fail in the database as a 500."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no unpaired surrogates)") from None
    return value


# Any text that is stored or looked up in PostgreSQL: bodies, path and query parameters, headers.
Text = Annotated[str, AfterValidator(_storable)]


def _no_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Identifier = Annotated[Text, Field(min_length=1, max_length=200), AfterValidator(_no_blank)]

LimitQuery = Annotated[int, Query(ge=1, le=100, description="Page size (1-100)")]
CursorQuery = Annotated[
    Text | None, Query(max_length=200, description="Return items after this id (the last one of a page)")
]


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    data: list[ItemT]
    has_more: bool
