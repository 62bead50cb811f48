"""Reading, listing and canceling jobs; all scoped to the caller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from comfygate.api.deps import Reader, Writer, counted_submission, gateway, renderer
from comfygate.errors import NotFound
from comfygate.gateway import Gateway
from comfygate.ids import UUID_PATTERN, is_uuid
from comfygate.jobs.model import JobStatus

router = APIRouter(prefix="/v1", tags=["jobs"])

GW = Annotated[Gateway, Depends(gateway)]


def _check_id(job_id: str) -> str:
    if not is_uuid(job_id):
        raise NotFound(f"no job {job_id!r}")
    return job_id


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, request: Request, gw: GW, who: Reader) -> dict[str, Any]:
    job = await gw.service.get(who, _check_id(job_id))
    return renderer(request).job(job, queue_position=await gw.store.queue_position(job))


@router.get("/jobs")
async def list_jobs(
    request: Request,
    gw: GW,
    who: Reader,
    status: Annotated[JobStatus | None, Query()] = None,
    workflow: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page", pattern=UUID_PATTERN)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    jobs = await gw.store.list_jobs(
        owner_id=who.id, status=status, workflow=workflow, before_id=cursor, limit=limit + 1
    )
    page, more = jobs[:limit], len(jobs) > limit
    r = renderer(request)
    return {
        "jobs": [r.job(j) for j in page],
        "next_cursor": page[-1].id if more and page else None,
    }


@router.post("/jobs/{job_id}/cancel", status_code=202)
async def cancel_job(job_id: str, request: Request, gw: GW, who: Writer) -> dict[str, Any]:
    """A queued job is canceled at once; a running one is ``canceling`` until its
    backend prompt is removed or interrupted. Canceling a finished job is a 409."""
    job = await gw.service.cancel(who, _check_id(job_id))
    return renderer(request).job(job)


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    responses={
        402: {"description": "quota_exceeded: the job would pass the caller's budget"},
        404: {"description": "No such job of the caller's"},
        409: {"description": "The job has not finished (or its stored graph is gone)"},
        429: {"description": "rate_limited, too_many_active_jobs or queue_full; see Retry-After"},
    },
)
async def retry_job(
    job_id: str, request: Request, response: Response, gw: GW, who: Writer
) -> dict[str, Any]:
    """A new job with ``retry_of`` set to this finished one, running the same accepted
    graph, parameters and inputs; it counts as a submission (rate, active jobs, cost)."""
    async with counted_submission(gw, who, request) as limit_headers:
        job = await gw.service.retry(who, _check_id(job_id))
    response.headers.update(limit_headers)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return renderer(request).job(job)


@router.delete("/jobs/{job_id}", status_code=204, responses={409: {}, 410: {}})
async def delete_job(job_id: str, gw: GW, who: Writer) -> Response:
    """Remove a finished job's inputs and outputs; a tombstone stays, and the job then
    answers 410 ``job_deleted``. A job still queued or running is a 409: cancel it."""
    await gw.service.delete(who, _check_id(job_id))
    return Response(status_code=204)


@router.get("/jobs/{job_id}/attempts")
async def job_attempts(job_id: str, gw: GW, who: Reader) -> dict[str, Any]:
    job = await gw.service.get(who, _check_id(job_id))
    return {
        "attempts": [
            {
                "attempt": a.attempt,
                "backend": a.backend,
                "prompt_id": a.prompt_id,
                "started_at": a.started_at.isoformat(),
                "finished_at": a.finished_at.isoformat() if a.finished_at else None,
                "outcome": a.outcome,
            }
            for a in await gw.store.attempts(job.id)
        ]
    }
