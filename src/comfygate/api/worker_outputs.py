"""Where a remote agent's outputs go: streamed through the gateway, or, when storage
presigns (leases say ``outputs_upload: presigned``), straight to storage in one PUT or,
past MULTIPART_ABOVE_BYTES, as a multipart upload of presigned parts that the gateway
starts, joins or aborts. Every call is fenced by the lease token, and every key lies
under the attempt's own prefix."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from comfygate.api.worker import GW, JobId, TokenHeader, Worker, held
from comfygate.errors import Conflict, InvalidParams
from comfygate.gateway import Gateway
from comfygate.jobs.keys import OUTPUT_NAME, outputs_prefix
from comfygate.jobs.model import Job
from comfygate.storage.base import PartsRefused
from comfygate.storage.parts import MAX_OBJECT_BYTES, MAX_PARTS, MIB, plan_parts
from comfygate.worker.transport.wire import PREFIX

log = logging.getLogger(__name__)

router = APIRouter(prefix=PREFIX, tags=["worker"])

#: how long an agent has to start a presigned output upload
OUTPUT_URL_TTL_S = 900
#: the largest single PUT S3 takes
MAX_OUTPUT_PUT_BYTES = 5 * 1024**3
#: outputs larger than this go up in parts, for agents that can send them
MULTIPART_ABOVE_BYTES = 256 * MIB
#: the parts' length (more grow when a file would need over 10,000)
PART_BYTES = 64 * MIB
#: part URLs outlive an upload this slow: the agent sends the parts one after another
SLOWEST_UPLOAD_BYTES_PER_S = MIB

Name = Annotated[str, Path(max_length=200)]
UploadId = Annotated[str, Field(min_length=1, max_length=1024)]
ETag = Annotated[str, Field(min_length=1, max_length=200)]


class OutputUrlIn(BaseModel):
    content_type: str = Field(min_length=1, max_length=200)
    bytes: int = Field(ge=0, le=MAX_OBJECT_BYTES)
    multipart: bool = Field(
        default=False,
        description="the agent can send parts: an output over the gateway's threshold "
        "is then answered with `upload_id` and `parts` instead of one `url`",
    )


class PartsIn(BaseModel):
    upload_id: UploadId


class PartsDoneIn(PartsIn):
    bytes: int = Field(ge=1, le=MAX_OBJECT_BYTES, description="the whole file's length")
    etags: list[ETag] = Field(
        min_length=1, max_length=MAX_PARTS, description="each part's ETag, in part order"
    )


def _output_key(job: Job, name: str) -> str:
    if not OUTPUT_NAME.fullmatch(name):
        raise InvalidParams(
            details=[{"path": "/name", "keyword": "pattern", "message": "a file name"}]
        )
    return f"{outputs_prefix(job.id, job.attempts)}/{name}"


async def _presigned_key(gw: Gateway, job_id: str, name: str, lease_token: str) -> str:
    """The key of output ``name`` of the attempt this token holds; 409 when storage
    takes outputs only through the gateway."""
    key = _output_key(await held(gw, job_id, lease_token), name)
    if not gw.storage.direct_uploads:
        raise Conflict(f"this gateway's storage takes outputs at PUT {PREFIX}/…/outputs/{name}")
    return key


@router.post("/jobs/{job_id}/outputs/{name}/url")
async def output_url(
    job_id: JobId, name: Name, body: OutputUrlIn, gw: GW, who: Worker, lease_token: TokenHeader
) -> dict[str, Any]:
    """A presigned PUT for one output under the attempt's prefix, signed for its type
    and length. With ``multipart: true`` and more than MULTIPART_ABOVE_BYTES, a started
    multipart upload instead: its ``upload_id`` and one presigned PUT per part, each
    signed for its ``bytes``; the agent sends them in order, keeps each answer's ETag,
    and ends with ``…/parts/complete`` (or ``…/parts/abort``)."""
    key = await _presigned_key(gw, job_id, name, lease_token)
    if body.multipart and body.bytes > MULTIPART_ABOVE_BYTES:
        return await _parts_out(gw, key, body)
    if body.bytes > MAX_OUTPUT_PUT_BYTES:
        raise InvalidParams(
            details=[
                {
                    "path": "/bytes",
                    "keyword": "maximum",
                    "message": f"one PUT takes {MAX_OUTPUT_PUT_BYTES} bytes: ask with "
                    "multipart: true",
                }
            ]
        )
    signed = gw.storage.sign_put(
        key, ttl_s=OUTPUT_URL_TTL_S, content_type=body.content_type, size=body.bytes
    )
    return {
        "key": key,
        "method": signed.method,
        "url": signed.url,
        "headers": signed.headers,
        "expires_at": signed.expires_at.isoformat(),
    }


async def _parts_out(gw: Gateway, key: str, body: OutputUrlIn) -> dict[str, Any]:
    sizes = plan_parts(body.bytes, PART_BYTES)
    ttl_s = OUTPUT_URL_TTL_S + body.bytes // SLOWEST_UPLOAD_BYTES_PER_S
    started = await gw.storage.begin_parts(
        key, ttl_s=ttl_s, content_type=body.content_type, sizes=sizes
    )
    return {
        "key": key,
        "upload_id": started.upload_id,
        "parts": [
            {
                "number": n,
                "bytes": size,
                "method": signed.method,
                "url": signed.url,
                "headers": signed.headers,
            }
            for n, (size, signed) in enumerate(zip(sizes, started.parts, strict=True), start=1)
        ],
        "expires_at": started.parts[0].expires_at.isoformat(),
    }


@router.post("/jobs/{job_id}/outputs/{name}/parts/complete")
async def complete_parts(
    job_id: JobId, name: Name, body: PartsDoneIn, gw: GW, who: Worker, lease_token: TokenHeader
) -> dict[str, Any]:
    """Join the parts into the output and check its length, as ``complete`` will. An
    upload storage will not join is aborted, its parts dropped: the agent starts over."""
    key = await _presigned_key(gw, job_id, name, lease_token)
    try:
        await gw.storage.finish_parts(key, body.upload_id, body.etags)
    except PartsRefused as exc:
        await _abort_quietly(gw, key, body.upload_id)
        path = "/upload_id" if exc.code == "NoSuchUpload" else "/etags"
        raise InvalidParams(
            details=[{"path": path, "keyword": "parts", "message": str(exc)}]
        ) from None
    stat = await gw.storage.stat(key)
    if stat is None or stat.bytes != body.bytes:
        # Joined from parts of other lengths than declared: not an output to keep.
        await gw.storage.delete(key)
        found = "missing" if stat is None else f"{stat.bytes} bytes stored"
        raise InvalidParams(
            details=[
                {
                    "path": "/bytes",
                    "keyword": "stored",
                    "message": f"{key}: {found}, {body.bytes} declared",
                }
            ]
        )
    return {"key": key, "bytes": stat.bytes}


@router.post("/jobs/{job_id}/outputs/{name}/parts/abort", status_code=204)
async def abort_parts(
    job_id: JobId, name: Name, body: PartsIn, gw: GW, who: Worker, lease_token: TokenHeader
) -> Response:
    """Drop a multipart upload the agent gives up on, with the parts sent so far."""
    key = await _presigned_key(gw, job_id, name, lease_token)
    await gw.storage.abort_parts(key, body.upload_id)
    return Response(status_code=204)


async def _abort_quietly(gw: Gateway, key: str, upload_id: str) -> None:
    try:
        await gw.storage.abort_parts(key, upload_id)
    except Exception:  # the refusal is the answer; a lingering upload only costs space
        log.warning("aborting multipart upload of %s failed", key, exc_info=True)


@router.put("/jobs/{job_id}/outputs/{name}")
async def put_output(
    job_id: JobId, name: Name, request: Request, gw: GW, who: Worker, lease_token: TokenHeader
) -> dict[str, Any]:
    """Stream one output into storage under the attempt's prefix. It becomes part of
    the job only through ``complete``; a loser's uploads are never listed."""
    job = await held(gw, job_id, lease_token)
    key = _output_key(job, name)
    content_type = request.headers.get("content-type") or "application/octet-stream"
    size, sha = await gw.storage.put_stream(key, request.stream(), content_type)
    return {"key": key, "bytes": size, "sha256": sha}
