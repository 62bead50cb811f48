"""Share links: an unguessable, read-only link to one job, made by its owner."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from comfygate.api.deps import current_principal, gateway, tokens
from comfygate.api.jobs import _check_id
from comfygate.gateway import Gateway
from comfygate.principal import Principal

router = APIRouter(prefix="/v1", tags=["jobs"])


def share_path(token: str) -> str:
    return f"/s/{token}"


@router.post("/jobs/{job_id}/share")
async def share_job(
    job_id: str,
    request: Request,
    gw: Annotated[Gateway, Depends(gateway)],
    who: Annotated[Principal, Depends(current_principal)],
) -> dict[str, str]:
    """A link that shows this job, read-only, to anyone who holds it. The token is the
    job id signed by the gateway, so the same job always gets the same link."""
    job = await gw.service.get(who, _check_id(job_id))
    token = tokens(request).share_token(job.id)
    return {"token": token, "url": share_path(token)}
