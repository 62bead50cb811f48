"""Server-Sent Events: the job stream and the all-jobs stream, framed.

What each stream sends, and when (replay, resume, keep-alive), is decided in
``comfygate.events``; here its items become SSE frames, each stored event with its
job's static parts as the API shows them.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from comfygate.api.deps import Reader, gateway, renderer
from comfygate.api.jobs import _check_id
from comfygate.api.render import Renderer
from comfygate.errors import InvalidParams
from comfygate.events.all_jobs_stream import open_all_jobs_stream
from comfygate.events.cursor import MAX_SEQ
from comfygate.events.job_stream import open_job_stream
from comfygate.events.stream import KEEPALIVE_S, Item, KeepAlive
from comfygate.gateway import Gateway
from comfygate.jobs.model import Job, JobEvent

router = APIRouter(prefix="/v1", tags=["events"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: ASCII digits only (``\d`` takes other scripts' digits), as many as MAX_SEQ has
_SEQ = re.compile(r"[0-9]{1,10}")


def frame(event_type: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event_type}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Formatter:
    def __init__(self, gw: Gateway, r: Renderer) -> None:
        self.gw, self.r = gw, r

    def payload(self, job: Job, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        if event_type == "status":
            return self.r.job_at(job, data)
        if event_type == "output":
            from comfygate.jobs.model import OutputFile

            return {**self.r.asset(OutputFile.from_dict(data)), "job_id": job.id}
        return {**data, "job_id": job.id}


# Framed here and sent by Starlette's StreamingResponse; sse-starlette was declared and
# is dropped. Its ping is a timer beside the stream, while a keep-alive here is the
# stream's own quiet while, when it also looks in the store for lost notices: its ping
# would be off and its frames made to match these byte for byte. What is left, its
# transport, starts three tasks per stream (sender, disconnect and shutdown listeners)
# and a cancel scope per chunk: 169 us per five-event stream where StreamingResponse
# takes 64, measured without a network.
async def sse(items: AsyncGenerator[Item], fmt: Formatter) -> AsyncIterator[str]:
    """The stream's items as SSE; closing this closes the stream (its subscription)."""
    async with contextlib.aclosing(items):
        yield "retry: 1000\n\n"
        async for item in items:
            if isinstance(item, KeepAlive):
                yield ": keep-alive\n\n"
            elif item.job is None:
                yield frame(item.type, {**item.data, "job_id": item.job_id})
            else:
                yield frame(item.type, fmt.payload(item.job, item.type, item.data), item.id)


def _last_event_id(header: str | None, request: Request) -> str | None:
    return header or request.query_params.get("last_event_id")


def _resume_after(header: str | None, request: Request) -> int:
    """The seq a job's stream resumes after; 0 without one. Refused unless it is a seq
    this stream could have sent: ``str.isdigit`` takes "²" that ``int`` does not, a
    long one passes the int limit, and past 64 bits SQLite cannot bind it."""
    raw = _last_event_id(header, request)
    if not raw:
        return 0
    if _SEQ.fullmatch(raw) and int(raw) <= MAX_SEQ:
        return int(raw)
    field = "/Last-Event-ID" if header else "/last_event_id"
    raise InvalidParams(
        f"{field[1:]} must be the id of an event this stream sent: a seq from 0 to {MAX_SEQ}",
        details=[{"path": field, "keyword": "format", "message": f"a seq from 0 to {MAX_SEQ}"}],
    )


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse)
async def job_events(
    job_id: str,
    request: Request,
    gw: Annotated[Gateway, Depends(gateway)],
    who: Reader,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    after = _resume_after(last_event_id, request)
    checked = _check_id(job_id)

    async def read(seq: int) -> tuple[list[JobEvent], Job]:
        return await gw.service.events_and_job(who, checked, seq)

    items = await open_job_stream(
        gw.bus,
        gw.store,
        gw.clock,
        viewer_id=who.id,
        read=read,
        after=after,
        keepalive_s=KEEPALIVE_S,
    )
    fmt = Formatter(gw, renderer(request))
    return StreamingResponse(sse(items, fmt), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/events", response_class=StreamingResponse)
async def all_events(
    request: Request,
    gw: Annotated[Gateway, Depends(gateway)],
    who: Reader,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Every job of the caller on one connection; each event names its job. The event
    id is a cursor; send it back as Last-Event-ID to resume."""
    items = open_all_jobs_stream(
        gw.bus,
        gw.store,
        gw.clock,
        owner_id=who.id,
        last_event_id=_last_event_id(last_event_id, request),
        keepalive_s=KEEPALIVE_S,
    )
    fmt = Formatter(gw, renderer(request))
    return StreamingResponse(sse(items, fmt), media_type="text/event-stream", headers=SSE_HEADERS)
