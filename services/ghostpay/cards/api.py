"""Card routes: issue, show, list and close single-use cards."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ghostpay.cards import service, store
from ghostpay.core import problems
from ghostpay.core.api_models import CursorQuery, Identifier, LimitQuery, MoneyModel, Page, Text
from ghostpay.core.deps import CallerDep, RuntimeDep, require_roles
from ghostpay.core.tokens import Principal

router = APIRouter(tags=["cards"])
CardStatus = Literal["active", "used", "expired", "closed"]
Issuer = Annotated[Principal, Depends(require_roles("admin", "merchant"))]


class CardCreate(MoneyModel):
    user_id: Identifier
    expires_in_seconds: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=5 * 366 * 86400,
        description="Seconds until the card can no longer be charged (default 30 days)",
    )


class Card(BaseModel):
    card_id: str
    user_id: str
    merchant_id: str
    status: CardStatus
    amount: int
    currency: str
    expires_at: datetime
    created_at: datetime
    exp_month: int
    exp_year: int
    last4: str


class IssuedCard(Card):
    pan: str = Field(description="The full card number: in this response only, never again")
    cvv: str = Field(description="In this response only; not stored")


def _card(row: store.CardRow) -> Card:
    return Card.model_validate(row, from_attributes=True)


@router.post(
    "/cards",
    status_code=201,
    response_model=IssuedCard,
    responses=problems.documented(400),
    summary="Issue a single-use card",
)
async def issue_card(body: CardCreate, runtime: RuntimeDep, caller: Issuer) -> IssuedCard:
    issued = await service.issue_card(
        runtime, caller, body.user_id, body.amount, body.currency, body.expires_in_seconds
    )
    return IssuedCard(**_card(issued.card).model_dump(), pan=issued.pan, cvv=issued.cvv)


@router.get("/cards/{card_id}", response_model=Card, summary="Show a card (without its number)")
async def get_card(card_id: Text, runtime: RuntimeDep, caller: CallerDep) -> Card:
    return _card(await service.get_card(runtime, caller, card_id))


@router.get("/cards", response_model=Page[Card], summary="List cards, newest first")
async def list_cards(
    runtime: RuntimeDep,
    caller: CallerDep,
    user_id: Annotated[Text | None, Query(max_length=200)] = None,
    status: Annotated[CardStatus | None, Query()] = None,
    limit: LimitQuery = 10,
    starting_after: CursorQuery = None,
) -> Page[Card]:
    rows, has_more = await service.list_cards(runtime, caller, user_id, status, limit, starting_after)
    return Page[Card](data=[_card(r) for r in rows], has_more=has_more)


@router.post("/cards/{card_id}/close", response_model=Card, summary="Close a card so it can never be charged")
async def close_card(card_id: Text, runtime: RuntimeDep, caller: Issuer) -> Card:
    return _card(await service.close_card(runtime, caller, card_id))
