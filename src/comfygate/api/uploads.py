"""Uploads: declare, send the bytes to the signed URL, complete (checked)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from comfygate.api.deps import Writer, gateway
from comfygate.gateway import Gateway

router = APIRouter(prefix="/v1", tags=["uploads"])


class UploadRequest(BaseModel):
    #: accepted for older clients; never stored nor used (keys are generated)
    filename: str | None = Field(default=None, max_length=255)
    content_type: str = Field(min_length=1, max_length=100)
    bytes: int = Field(gt=0)


@router.post("/uploads", status_code=201)
async def create_upload(
    body: UploadRequest,
    gw: Annotated[Gateway, Depends(gateway)],
    who: Writer,
) -> dict[str, Any]:
    """Answers where to send the file: ``upload.method`` to ``upload.url`` with
    ``upload.headers``, before ``upload.expires_at``. Then call ``…/complete``."""
    upload_id, signed = await gw.uploads.create(
        who.id, content_type=body.content_type, size=body.bytes
    )
    return {
        "id": upload_id,
        "upload": {
            "method": signed.method,
            "url": signed.url,
            "headers": signed.headers,
            "expires_at": signed.expires_at.isoformat(),
        },
    }


@router.post("/uploads/{upload_id}/complete")
async def complete_upload(
    upload_id: str,
    gw: Annotated[Gateway, Depends(gateway)],
    who: Writer,
) -> dict[str, Any]:
    """Decodes the file and checks its size, pixels and format; an image parameter
    then takes the upload's ``id``."""
    info = await gw.uploads.complete(who.id, upload_id)
    return {k: info[k] for k in ("id", "content_type", "width", "height", "sha256")}
