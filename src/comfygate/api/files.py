"""The local storage's signed URLs: GET downloads, PUT uploads. S3 serves its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from comfygate.api.deps import gateway
from comfygate.api.served_files import served_headers
from comfygate.errors import ComfygateError, InvalidUpload, OutputExpired
from comfygate.gateway import Gateway
from comfygate.storage.local import LocalStorage, content_type_for

router = APIRouter(tags=["files"], include_in_schema=False)


class Forbidden(ComfygateError):
    """The link is invalid or has expired."""

    code = "invalid_signature"
    status_code = 403


@router.get("/files/{key:path}")
async def download(
    key: str,
    gw: Annotated[Gateway, Depends(gateway)],
    exp: Annotated[int, Query()],
    sig: Annotated[str, Query()],
) -> StreamingResponse:
    storage = _local(gw)
    if not storage.verify("GET", key, exp, sig):
        raise Forbidden
    opened = await storage.open_sized(key)
    if opened is None:
        if await _expired(gw, key):
            raise OutputExpired
        raise Forbidden("the file is gone")
    size, chunks = opened
    content_type = content_type_for(key)
    return StreamingResponse(
        chunks,
        media_type=content_type,
        headers={
            "Content-Length": str(size),
            "Cache-Control": "private, max-age=3600, immutable",
            **served_headers(key.rsplit("/", 1)[-1], content_type),
        },
    )


def _local(gw: Gateway) -> LocalStorage:
    # With S3 the bucket serves presigned URLs itself: these links were never issued.
    if not isinstance(gw.storage, LocalStorage):
        raise Forbidden
    return gw.storage


async def _expired(gw: Gateway, key: str) -> bool:
    """A signed link to an output whose retention ran out, or whose job was deleted."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "outputs":
        return False
    job = await gw.store.get_job(parts[1])
    return job is not None and (job.outputs_expired_at is not None or job.deleted_at is not None)


@router.put("/files/{key:path}", status_code=204)
async def upload(
    key: str,
    request: Request,
    gw: Annotated[Gateway, Depends(gateway)],
    exp: Annotated[int, Query()],
    sig: Annotated[str, Query()],
    ct: Annotated[str, Query()],
    max: Annotated[int, Query()],
) -> Response:
    if not _local(gw).verify("PUT", key, exp, sig, ct, str(max)):
        raise Forbidden
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max:
        raise InvalidUpload(f"the body is larger than the declared {max} bytes")

    async def limited() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > max:
                raise InvalidUpload(f"the body is larger than the declared {max} bytes")
            yield chunk

    await gw.storage.put_stream(key, limited(), ct)
    return Response(status_code=204)
