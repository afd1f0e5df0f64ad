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


def _no_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Identifier = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_blank)]

LimitQuery = Annotated[int, Query(ge=1, le=100, description="Page size (1-100)")]
CursorQuery = Annotated[
    str | None, Query(max_length=200, description="Return items after this id (the last one of a page)")
]


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    data: list[ItemT]
    has_more: bool
