"""Every owner's jobs: list, inspect (timeline and attempts), cancel, retry."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field

from comfygate.api.admin.guard import Admin, admin_router
from comfygate.api.deps import gateway, renderer
from comfygate.api.jobs import _check_id
from comfygate.gateway import Gateway
from comfygate.ids import UUID_PATTERN
from comfygate.jobs.model import Attempt, Job, JobEvent, JobStatus

router = admin_router()
GW = Annotated[Gateway, Depends(gateway)]

JOB_DOC = (
    "The job resource of /v1/jobs, plus owner_id, pool, lease_owner (the agent holding "
    "it); its urls are the admin ones (owner: the URL its owner reads it at)"
)


class JobPage(BaseModel):
    jobs: list[dict[str, Any]] = Field(description=JOB_DOC)
    next_cursor: str | None = Field(description="Pass as cursor for the next (older) page")


class TimelineEvent(BaseModel):
    seq: int
    type: str = Field(description="status | output")
    at: datetime
    data: dict[str, Any] = Field(description="For status: the job as it was then")


class AttemptOut(BaseModel):
    attempt: int
    backend: str
    prompt_id: str = Field(description="The prompt id ComfyUI ran")
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None = Field(description="succeeded, canceled, or the error code")


class JobDetail(BaseModel):
    job: dict[str, Any] = Field(description=JOB_DOC)
    timeline: list[TimelineEvent] = Field(description="Every stored event, oldest first")
    attempts: list[AttemptOut]


def _job(request: Request, job: Job, *, queue_position: int | None = None) -> dict[str, Any]:
    body = renderer(request).job(job, queue_position=queue_position)
    base = f"/v1/admin/jobs/{job.id}"
    body.update(
        owner_id=job.owner_id,
        pool=job.pool,
        lease_owner=job.lease_owner,
        # The session cookie counts on admin paths only, so a dashboard follows these.
        urls={
            "self": base,
            "cancel": f"{base}/cancel",
            "retry": f"{base}/retry",
            "events": "/v1/admin/events",
            "owner": body["urls"]["self"],
        },
    )
    return body


def _timeline(event: JobEvent) -> TimelineEvent:
    return TimelineEvent(seq=event.seq, type=event.type, at=event.at, data=event.data)


def _attempt(a: Attempt) -> AttemptOut:
    return AttemptOut(
        attempt=a.attempt,
        backend=a.backend,
        prompt_id=a.prompt_id,
        started_at=a.started_at,
        finished_at=a.finished_at,
        outcome=a.outcome,
    )


@router.get("/jobs")
async def list_jobs(
    request: Request,
    gw: GW,
    status: Annotated[JobStatus | None, Query()] = None,
    workflow: Annotated[str | None, Query(max_length=100)] = None,
    pool: Annotated[str | None, Query(max_length=100)] = None,
    owner: Annotated[str | None, Query(max_length=200, description="An owner id")] = None,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page", pattern=UUID_PATTERN)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobPage:
    """Jobs of every owner, newest first, filtered and paged by cursor."""
    jobs = await gw.store.list_jobs(
        owner_id=owner,
        status=status,
        workflow=workflow,
        pool=pool,
        before_id=cursor,
        limit=limit + 1,
    )
    page, more = jobs[:limit], len(jobs) > limit
    return JobPage(
        jobs=[_job(request, j) for j in page],
        next_cursor=page[-1].id if more and page else None,
    )


@router.get("/jobs/{job_id}", responses={404: {"description": "No such job"}})
async def get_job(job_id: str, request: Request, gw: GW, who: Admin) -> JobDetail:
    """The job, its timeline (every stored event) and its attempts on backends."""
    job = await gw.service.get(who, _check_id(job_id))
    events = await gw.store.events_after(job.id, 0)
    attempts = await gw.store.attempts(job.id)
    return JobDetail(
        job=_job(request, job, queue_position=await gw.store.queue_position(job)),
        timeline=[_timeline(e) for e in events],
        attempts=[_attempt(a) for a in attempts],
    )


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    responses={
        202: {"description": JOB_DOC},
        404: {"description": "No such job"},
        409: {"description": "Already finished"},
    },
)
async def cancel_job(job_id: str, request: Request, gw: GW, who: Admin) -> dict[str, Any]:
    """Cancel any owner's job, as the owner's cancel would: a queued job is canceled at
    once, a running one is ``canceling`` until its prompt stops; a finished job is a 409."""
    job = await gw.service.cancel(who, _check_id(job_id))
    return _job(request, job)


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    responses={
        202: {"description": "The new job: " + JOB_DOC},
        404: {"description": "No such job"},
        409: {"description": "The job has not finished (or its stored graph is gone)"},
        429: {"description": "The pool's queue is full; Retry-After says when to try"},
    },
)
async def retry_job(
    job_id: str, request: Request, response: Response, gw: GW, who: Admin
) -> dict[str, Any]:
    """A new job with ``retry_of`` set to this one, for the same owner, running the same
    accepted graph, parameters and inputs. The old job is left as it is."""
    job = await gw.service.retry(who, _check_id(job_id))
    response.headers["Location"] = f"/v1/admin/jobs/{job.id}"
    return _job(request, job)
