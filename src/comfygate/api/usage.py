"""The caller's spending: ``GET /v1/usage``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from comfygate.api.deps import current_principal, gateway
from comfygate.gateway import Gateway
from comfygate.principal import Principal

router = APIRouter(prefix="/v1", tags=["usage"])


@router.get("/usage")
async def usage(
    gw: Annotated[Gateway, Depends(gateway)],
    who: Annotated[Principal, Depends(current_principal)],
) -> dict[str, Any]:
    """What the caller's jobs cost in the current period, its budget (null: none),
    what remains and when the period resets; and its jobs queued or running now."""
    now = gw.clock.now()
    used = await gw.budgets.usage(who.id, default=gw.service.quotas.default_budget(who), now=now)
    max_active = gw.service.quotas.max_active.get(who.kind) or None
    budget = used.budget
    return {
        "principal_id": who.id,
        "period": budget.period if budget else None,
        "budget": budget.amount if budget else None,
        "used": used.used,
        "remaining": used.remaining,
        "period_start": used.period_start.isoformat() if used.period_start else None,
        "resets_at": used.resets_at.isoformat() if used.resets_at else None,
        "active_jobs": used.active_jobs,
        "max_active": max_active,
    }
