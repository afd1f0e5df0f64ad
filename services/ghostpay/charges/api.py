"""Charge routes: charge a card (with an optional `Idempotency-Key`), show and list charges."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel

from ghostpay.charges import service, store
from ghostpay.core import problems
from ghostpay.core.api_models import CursorQuery, Identifier, LimitQuery, MoneyModel, Page, Text
from ghostpay.core.deps import BEARER_SECURED, CallerDep, RuntimeDep, admits, caller_in, runtime_of
from ghostpay.core.settings import Role

router = APIRouter(tags=["charges"])
CHARGER_ROLES: tuple[Role, ...] = ("admin", "merchant")


class ChargeCreate(MoneyModel):
    card_id: Identifier


class Charge(BaseModel):
    charge_id: str
    card_id: str
    merchant_id: str
    amount: int
    currency: str
    status: Literal["approved", "declined"]
    created_at: datetime


class ChargeDetail(Charge):
    decline_code: str | None = None


@router.post(
    "/charges",
    status_code=201,
    response_model=Charge,
    responses=problems.documented(400, 402, 409),
    summary="Charge a single-use card",
    openapi_extra=BEARER_SECURED,  # the hot path: caller and runtime read without sub-dependencies (core.deps)
)
@admits(*CHARGER_ROLES)
async def create_charge(
    body: ChargeCreate,
    request: Request,
    response: Response,
    idempotency_key: Annotated[Text | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)] = None,
) -> Charge:
    caller = caller_in(request, CHARGER_ROLES)
    result = await service.create_charge(
        runtime_of(request), caller, body.card_id, body.amount, body.currency, idempotency_key
    )
    if result.replayed:
        response.headers[service.REPLAYED_HEADER] = "true"
    return Charge.model_validate(result.charge, from_attributes=True)


def _detail(row: store.ChargeRow) -> ChargeDetail:
    return ChargeDetail.model_validate(row, from_attributes=True)


@router.get("/charges/{charge_id}", response_model=ChargeDetail, summary="Show a charge")
async def get_charge(charge_id: Text, runtime: RuntimeDep, caller: CallerDep) -> ChargeDetail:
    return _detail(await service.get_charge(runtime, caller, charge_id))


@router.get("/charges", response_model=Page[ChargeDetail], summary="List charges, newest first")
async def list_charges(
    runtime: RuntimeDep,
    caller: CallerDep,
    card_id: Annotated[Text | None, Query(max_length=200)] = None,
    limit: LimitQuery = 10,
    starting_after: CursorQuery = None,
) -> Page[ChargeDetail]:
    rows, has_more = await service.list_charges(runtime, caller, card_id, limit, starting_after)
    return Page[ChargeDetail](data=[_detail(r) for r in rows], has_more=has_more)
