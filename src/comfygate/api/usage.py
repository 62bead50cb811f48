"""The caller's spending: ``GET /v1/usage``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from comfygate.api.deps import Reader, gateway
from comfygate.gateway import Gateway

router = APIRouter(prefix="/v1", tags=["usage"])


class UsageOut(BaseModel):
    principal_id: str
    #: the budget's period, else the UTC day
    period: Literal["day", "month"]
    #: null: no budget
    budget: float | None
    used: float
    #: null: no budget
    remaining: float | None
    period_start: datetime
    resets_at: datetime
    active_jobs: int
    #: null: no limit
    max_active: int | None


@router.get("/usage")
async def usage(
    gw: Annotated[Gateway, Depends(gateway)],
    who: Reader,
) -> UsageOut:
    """What the caller's jobs cost in the current period (its budget's, else the UTC
    day), its budget and what remains (null: no budget), when the period resets, and
    its jobs queued or running now against its limit (null: none)."""
    quotas = gw.service.quotas
    used = await gw.budgets.usage(who.id, default=quotas.default_budget(who), now=gw.clock.now())
    budget = used.budget
    return UsageOut(
        principal_id=who.id,
        period=budget.period if budget else "day",
        budget=budget.amount if budget else None,
        used=used.used,
        remaining=used.remaining,
        period_start=used.period_start,
        resets_at=used.resets_at,
        active_jobs=used.active_jobs,
        max_active=quotas.max_active.get(who.kind) or None,
    )
