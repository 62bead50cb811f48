"""Share links: an unguessable, read-only link to one job, made by its owner, who can
list and revoke them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from comfygate.api.deps import Reader, Writer, gateway, tokens
from comfygate.api.jobs import _check_id
from comfygate.errors import NotFound
from comfygate.gateway import Gateway
from comfygate.shares import ShareLink

router = APIRouter(prefix="/v1", tags=["jobs"])

GW = Annotated[Gateway, Depends(gateway)]
#: a share link lives at most a year when it is given an expiry
MAX_EXPIRY_S = 366 * 24 * 3600


class ShareIn(BaseModel):
    expires_in_s: int | None = Field(
        default=None, ge=60, le=MAX_EXPIRY_S, description="none: until revoked"
    )


def share_path(token: str) -> str:
    return f"/s/{token}"


def _describe(request: Request, link: ShareLink) -> dict[str, Any]:
    token = tokens(request).share_token(link.id)
    return {
        "id": link.id,
        "token": token,
        "url": share_path(token),
        "created_at": link.created_at.isoformat(),
        "expires_at": link.expires_at.isoformat() if link.expires_at else None,
        "revoked_at": link.revoked_at.isoformat() if link.revoked_at else None,
    }


@router.post("/jobs/{job_id}/share")
async def share_job(
    job_id: str, request: Request, gw: GW, who: Writer, body: ShareIn | None = None
) -> dict[str, Any]:
    """A new link that shows this job, read-only, to anyone who holds it, until it
    expires or is revoked (``DELETE /v1/jobs/{id}/shares/{share_id}``)."""
    job = await gw.service.get(who, _check_id(job_id))
    expires = body.expires_in_s if body else None
    link = await gw.shares.create(job.id, job.owner_id, expires_in_s=expires)
    return _describe(request, link)


@router.get("/jobs/{job_id}/shares")
async def list_shares(job_id: str, request: Request, gw: GW, who: Reader) -> dict[str, Any]:
    job = await gw.service.get(who, _check_id(job_id))
    return {"shares": [_describe(request, s) for s in await gw.shares.of_job(job.id)]}


@router.delete("/jobs/{job_id}/shares/{share_id}", status_code=204)
async def revoke_share(job_id: str, share_id: str, gw: GW, who: Writer) -> Response:
    """The link stops opening the job at once."""
    job = await gw.service.get(who, _check_id(job_id))
    if not await gw.shares.revoke(share_id[:36], job_id=job.id):
        raise NotFound(f"job {job.id} has no live share link {share_id!r}")
    return Response(status_code=204)
