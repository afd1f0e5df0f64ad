"""Analytics routes: `GET /analytics/summary`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from ghostpay.analytics import service
from ghostpay.core.deps import RuntimeDep, require_roles
from ghostpay.core.tokens import Principal

router = APIRouter(tags=["analytics"])


class ChargeCounts(BaseModel):
    approved: int
    declined: int


class AnalyticsSummary(BaseModel):
    cards_issued: int
    charges: ChargeCounts
    volume: dict[str, int]
    decline_reasons: dict[str, int]


@router.get(
    "/analytics/summary",
    response_model=AnalyticsSummary,
    summary="Cards issued, charges, volume by currency and decline reasons",
)
async def get_summary(
    runtime: RuntimeDep, caller: Annotated[Principal, Depends(require_roles("admin", "merchant"))]
) -> AnalyticsSummary:
    summary = await service.summary_for(runtime, caller)
    return AnalyticsSummary(
        cards_issued=summary.cards_issued,
        charges=ChargeCounts(**summary.charges),
        volume=summary.volume,
        decline_reasons=summary.decline_reasons,
    )
