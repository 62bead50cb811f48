"""The worker protocol over HTTP, for agents on GPU hosts that reach the gateway only
outbound. Every call needs an API key with the ``worker`` scope; every call after
``lease`` is fenced by the lease token, and a lost lease answers 409 ``lease_lost``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from comfygate.api.admin.credentials import bearer, sessions
from comfygate.api.deps import gateway, sign_in_attempt
from comfygate.api.served_files import served_headers
from comfygate.errors import (
    Forbidden,
    InvalidParams,
    LeaseLost,
    ModelsUnknown,
    Unauthorized,
)
from comfygate.gateway import Gateway
from comfygate.ids import is_uuid
from comfygate.jobs.keys import OUTPUT_NAME, outputs_prefix, prompt_key
from comfygate.jobs.model import LEASED, Job, JobFailure, Lease, Lessee, OutputFile, Progress
from comfygate.keys import ApiKey
from comfygate.worker.transport.wire import (
    LEASE_HEADER,
    PREFIX,
    PRESIGNED,
    lease_to_dict,
    models_digest,
)

router = APIRouter(prefix=PREFIX, tags=["worker"])

GW = Annotated[Gateway, Depends(gateway)]
#: a long poll answers before common proxies (60 s) cut an idle request
MAX_WAIT_S = 25.0
DISCONNECT_CHECK_S = 0.5
MAX_PREVIEW_BYTES = 4 * 1024 * 1024
PREVIEW_TYPES = ("image/png", "image/jpeg")


async def worker(request: Request, gw: GW) -> ApiKey:
    """The worker key of ``Authorization: Bearer``; 401 without a live key, 403 for a
    key without the ``worker`` scope (``admin`` does not imply it: operators do not
    lease jobs)."""
    refusal = "a live API key with the worker scope is required (Bearer)"
    secret = bearer(request)
    if secret is None:
        raise Unauthorized(refusal)
    async with sign_in_attempt(gw, request) as attempt:
        # Checked only once the address may try at all: else its answer would tell a
        # throttled guesser which guess was the admin token.
        if sessions(request).check_token(secret):
            # A credential we know, refused for its scope like any admin key: no guess.
            raise Forbidden("this needs a key with the worker scope")
        key = await gw.api_keys.resolve(secret)
        if key is None:
            attempt.key_id = await gw.api_keys.revoked_id(secret)
            raise Unauthorized(refusal)
    if "worker" not in key.scopes:
        raise Forbidden("this needs a key with the worker scope")
    return key


Worker = Annotated[ApiKey, Depends(worker)]
JobId = Annotated[str, Path(max_length=36)]
TokenHeader = Annotated[str, Header(alias=LEASE_HEADER, min_length=1, max_length=200)]


PoolName = Annotated[str, Field(min_length=1, max_length=100)]
ModelName = Annotated[str, Field(min_length=1, max_length=500)]


class LeaseIn(BaseModel):
    request_id: str = Field(min_length=1, max_length=100, description="same on a retry")
    agent_id: str = Field(min_length=1, max_length=200)
    backend: str = Field(min_length=1, max_length=500, description="its ComfyUI's URL")
    pools: list[PoolName] | None = Field(
        default=None, min_length=1, max_length=50, description="the pools it serves"
    )
    pool: PoolName = Field(default="default", description="one pool (when pools is absent)")
    capacity: int | None = Field(default=None, ge=0, le=1000, description="its free slots")
    models: list[ModelName] | None = Field(
        default=None,
        max_length=50_000,
        description="the model files its ComfyUI lists; jobs naming others are not leased",
    )
    models_digest: str | None = Field(
        default=None,
        pattern="^[0-9a-f]{64}$",
        description="SHA-256 (hex) of the sorted model file names joined by newlines: "
        "with it, `models` may be left out once this gateway has taken that list "
        "(409 models_unknown asks for it again)",
    )
    wait_s: float = Field(default=MAX_WAIT_S, ge=0, le=MAX_WAIT_S)
    retry: bool = Field(default=False, description="true when resent after a lost answer")


class AdoptIn(BaseModel):
    agent_id: str = Field(min_length=1, max_length=200)
    backend: str = Field(min_length=1, max_length=500)


class Fenced(BaseModel):
    lease_token: str = Field(min_length=1, max_length=200)


class ProgressIn(Fenced):
    progress: dict[str, Any]


class OutputIn(BaseModel):
    key: str = Field(min_length=1, max_length=1000)
    kind: str = Field(min_length=1, max_length=20)
    content_type: str = Field(min_length=1, max_length=200)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    node_id: str = Field(max_length=100)
    stage: str = Field(default="main", max_length=50)


class CompleteIn(Fenced):
    outputs: list[OutputIn] = Field(max_length=1000)
    progress: dict[str, Any] | None = None


class FailureIn(BaseModel):
    code: str = Field(min_length=1, max_length=100)
    message: str = Field(max_length=10_000)
    node_id: str | None = Field(default=None, max_length=100)
    class_type: str | None = Field(default=None, max_length=200)
    details: Any = None


class FailIn(Fenced):
    failure: FailureIn
    retryable: bool = False


def _owner(key: ApiKey) -> str:
    """The lease owner the store records: with the backend URL, the agent's identity
    (the prefix kept from worker tokens, whose ids the keys inherited)."""
    return f"worker:{key.id}"


def _progress(data: dict[str, Any] | None, field: str) -> Progress:
    try:
        return Progress.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise InvalidParams(
            details=[{"path": f"/{field}", "keyword": "type", "message": str(exc)}]
        ) from None


def _wire(job_id: str, lease_token: str, attempt: int = 0) -> Lease:
    """The parts of a lease the gate's fenced calls read: the job and the token."""
    return Lease(
        job_id=job_id,
        lease_token=lease_token,
        attempt=attempt,
        prompt_id="",
        prompt_key=prompt_key(job_id),
        inputs=(),
        outputs_prefix=outputs_prefix(job_id, attempt),
        timeout_s=0.0,
        lease_ttl_s=0.0,
        heartbeat_s=0.0,
    )


async def held(gw: Gateway, job_id: str, lease_token: str) -> Job:
    """The job while this token holds its lease; LeaseLost otherwise (409)."""
    job = await gw.store.get_job(job_id) if is_uuid(job_id) else None
    if job is None or job.status not in LEASED or job.lease_token != lease_token:
        raise LeaseLost
    return job


@router.post(
    "/lease",
    responses={
        200: {"description": "a lease"},
        204: {"description": "no work within wait_s"},
        409: {"description": "models_unknown: send `models` whole with its digest"},
    },
)
async def lease(body: LeaseIn, request: Request, gw: GW, who: Worker) -> Response:
    """Long-poll for the next job of ``pool``. Retry with the same ``request_id`` after a
    lost answer: the lease the first call took comes back, not another job."""
    pools = tuple(dict.fromkeys(body.pools or [body.pool]))
    if who.pool is not None and any(p != who.pool for p in pools):
        raise Forbidden(f"this worker key may only lease from pool {who.pool!r}")
    lessee = Lessee(
        agent_id=_owner(who),
        backend=body.backend,
        pools=pools,
        capacity=body.capacity,
        models=_models(gw, body),
    )

    async def claim() -> Lease | None:
        return await gw.gate.lease(
            lessee, wait_s=body.wait_s, request_id=body.request_id, retry=body.retry
        )

    task = gw.lease_requests.call(_owner(who), body.request_id, claim)
    while not task.done():
        await asyncio.wait({task}, timeout=DISCONNECT_CHECK_S)
        # A gone agent's long poll ends here; the claim runs on for its retry.
        if not task.done() and await request.is_disconnected():
            return Response(status_code=204)
    got = task.result()
    if got is None:
        return Response(status_code=204)
    return JSONResponse(_lease_out(gw, got))


def _models(gw: Gateway, body: LeaseIn) -> frozenset[str] | None:
    """The agent's model files: sent whole (and then remembered by their digest), or
    named by a digest this gateway remembers."""
    if body.models is not None:
        models = frozenset(body.models)
        if body.models_digest is not None:
            if models_digest(models) != body.models_digest:
                raise InvalidParams(
                    details=[
                        {
                            "path": "/models_digest",
                            "message": "is not the SHA-256 of the sorted models",
                            "keyword": "x-digest",
                        }
                    ]
                )
            gw.model_lists.remember(body.models_digest, models)
        return models
    if body.models_digest is None:
        return None
    known = gw.model_lists.get(body.models_digest)
    if known is None:
        raise ModelsUnknown
    return known


def _lease_out(gw: Gateway, lease: Lease) -> dict[str, Any]:
    """The lease, and how its outputs reach storage: presigned URLs when storage can
    hand them out, so the bytes never pass through the gateway."""
    return {
        **lease_to_dict(lease),
        "outputs_upload": PRESIGNED if gw.storage.direct_uploads else "gateway",
    }


@router.post("/adopt")
async def adopt(body: AdoptIn, gw: GW, who: Worker) -> dict[str, Any]:
    """A (re)starting agent's leases on this backend, renewed under fresh tokens: it
    follows those prompts again instead of the jobs waiting out their leases."""
    leases = await gw.gate.adopt(agent_id=_owner(who), backend=body.backend)
    return {"leases": [_lease_out(gw, x) for x in leases]}


@router.post("/jobs/{job_id}/heartbeat")
async def heartbeat(job_id: JobId, body: Fenced, gw: GW, who: Worker) -> dict[str, bool]:
    reply = await gw.gate.heartbeat(_wire(job_id, body.lease_token))
    return {"cancel": reply.cancel}


@router.post("/jobs/{job_id}/progress")
async def progress(job_id: JobId, body: ProgressIn, gw: GW, who: Worker) -> dict[str, bool]:
    reply = await gw.gate.progress(
        _wire(job_id, body.lease_token), _progress(body.progress, "progress")
    )
    return {"cancel": reply.cancel}


@router.post("/jobs/{job_id}/preview", status_code=204)
async def preview(
    job_id: JobId,
    request: Request,
    gw: GW,
    who: Worker,
    lease_token: TokenHeader,
    node_id: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """A sampler preview (PNG or JPEG body); dropped quietly when the lease is gone."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type not in PREVIEW_TYPES:
        raise InvalidParams(
            details=[{"path": "/content-type", "keyword": "enum", "message": "png or jpeg"}]
        )
    data = await request.body()
    if len(data) > MAX_PREVIEW_BYTES:
        raise InvalidParams(details=[{"path": "/body", "keyword": "maxLength", "message": "big"}])
    await gw.gate.preview(
        _wire(job_id, lease_token), node_id=node_id, content_type=content_type, data=data
    )
    return Response(status_code=204)


@router.get("/jobs/{job_id}/prompt", response_class=StreamingResponse)
async def prompt(job_id: JobId, gw: GW, who: Worker, lease_token: TokenHeader) -> Response:
    """The patched graph of the leased job."""
    job = await held(gw, job_id, lease_token)
    return _stream(gw, prompt_key(job.id), "application/json")


@router.get("/jobs/{job_id}/inputs/{index}", response_class=StreamingResponse)
async def input_file(
    job_id: JobId,
    index: Annotated[int, Path(ge=0, le=1000)],
    gw: GW,
    who: Worker,
    lease_token: TokenHeader,
) -> Response:
    """Input file ``index`` of the lease's ``inputs``."""
    job = await held(gw, job_id, lease_token)
    if index >= len(job.inputs):
        raise InvalidParams(
            details=[{"path": "/index", "keyword": "maximum", "message": "no such input"}]
        )
    return _stream(gw, job.inputs[index].key, "application/octet-stream")


@router.post("/jobs/{job_id}/complete", status_code=204)
async def complete(job_id: JobId, body: CompleteIn, gw: GW, who: Worker) -> Response:
    """Commit the outputs (uploaded under this attempt's prefix) and end the job."""
    outputs = [OutputFile(**o.model_dump()) for o in body.outputs]
    final = None if body.progress is None else _progress(body.progress, "progress")
    try:
        job = await held(gw, job_id, body.lease_token)
    except LeaseLost:
        # A retried complete whose first answer was lost: the same outputs are committed.
        done = await gw.store.get_job(job_id) if is_uuid(job_id) else None
        if done is not None and done.outputs and list(done.outputs) == outputs:
            return Response(status_code=204)
        raise
    prefix = outputs_prefix(job.id, job.attempts) + "/"
    for n, output in enumerate(outputs):
        if not output.key.startswith(prefix):
            raise InvalidParams(
                details=[
                    {"path": f"/outputs/{n}/key", "keyword": "prefix", "message": f"not {prefix}"}
                ]
            )
        # A name as the upload routes take it, so "../" or "a/b" never reaches storage
        # (which refuses such a key with an error of its own: a 500 here).
        if not OUTPUT_NAME.fullmatch(output.key.removeprefix(prefix)):
            raise InvalidParams(
                details=[
                    {
                        "path": f"/outputs/{n}/key",
                        "keyword": "pattern",
                        "message": f"{prefix} then a file name, no path",
                    }
                ]
            )
    await _check_stored(gw, outputs)
    await gw.gate.complete(_wire(job.id, body.lease_token, job.attempts), outputs, final)
    return Response(status_code=204)


@router.post("/jobs/{job_id}/fail", status_code=204)
async def fail(job_id: JobId, body: FailIn, gw: GW, who: Worker) -> Response:
    job = await held(gw, job_id, body.lease_token)
    failure = JobFailure(**body.failure.model_dump())
    await gw.gate.fail(
        _wire(job.id, body.lease_token, job.attempts), failure, retryable=body.retryable
    )
    return Response(status_code=204)


@router.post("/jobs/{job_id}/canceled", status_code=204)
async def canceled(job_id: JobId, body: Fenced, gw: GW, who: Worker) -> Response:
    await gw.gate.canceled(_wire(job_id, body.lease_token))
    return Response(status_code=204)


async def _check_stored(gw: Gateway, outputs: list[OutputFile]) -> None:
    """Each output is in storage with its declared size: an agent that uploaded to a
    presigned URL is taken at its word only after the object is seen."""
    stats = await asyncio.gather(*(gw.storage.stat(o.key) for o in outputs))
    for n, (output, stat) in enumerate(zip(outputs, stats, strict=True)):
        if stat is None or stat.bytes != output.bytes:
            found = "missing" if stat is None else f"{stat.bytes} bytes stored"
            raise InvalidParams(
                details=[
                    {
                        "path": f"/outputs/{n}/bytes",
                        "keyword": "stored",
                        "message": f"{output.key}: {found}, {output.bytes} declared",
                    }
                ]
            )


def _stream(gw: Gateway, key: str, media_type: str) -> StreamingResponse:
    return StreamingResponse(
        gw.storage.open(key),
        media_type=media_type,
        headers=served_headers(key.rsplit("/", 1)[-1], media_type),
    )
