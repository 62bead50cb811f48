"""Server-Sent Events: one contract for the job stream and the all-jobs stream.

Stored events (``status``, ``output``) carry an ``id`` and are replayed after
``Last-Event-ID``; ``progress`` and ``preview`` are live only. A resume replays what
was missed from the store, then sends a current progress snapshot, then goes live.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from comfygate.api.cursor import MAX_SEQ, StreamCursor
from comfygate.api.deps import Reader, gateway, renderer
from comfygate.api.jobs import _check_id
from comfygate.api.render import Renderer
from comfygate.errors import InvalidParams
from comfygate.events.memory import SubscriberOverflow
from comfygate.gateway import Gateway
from comfygate.jobs.model import Job, JobStatus, LiveEvent

router = APIRouter(prefix="/v1", tags=["events"])

KEEPALIVE_S = 15.0
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


async def _next(sub: Any, wait_s: float) -> LiveEvent | None:
    try:
        return await asyncio.wait_for(sub.__anext__(), wait_s)
    except TimeoutError:
        return None


def _ends(event_type: str, data: dict[str, Any]) -> bool:
    """Whether this event is the job's last: its terminal status."""
    return event_type == "status" and JobStatus(data["status"]).terminal


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
        details=[{"path": field, "keyword": "format", "message": f"a seq from 0 to {MAX_SEQ}"}]
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
    # Subscribed before the read, so nothing published meanwhile is missed; the caller
    # is the owner but for an admin looking on. One read serves the owner check, the
    # missed events, their static parts, the end test and the progress snapshot.
    sub = gw.bus.subscribe(who.id)
    try:
        missed, job = await gw.service.events_and_job(who, _check_id(job_id), after)
        if job.owner_id != who.id:
            await sub.aclose()
            sub = gw.bus.subscribe(job.owner_id)
            missed, job = await gw.service.events_and_job(who, job.id, after)
    except BaseException:
        await sub.aclose()
        raise
    fmt = Formatter(gw, renderer(request))

    async def stream() -> AsyncIterator[str]:
        last = after
        try:
            yield "retry: 1000\n\n"
            current = job

            ended = False

            async def catch_up() -> AsyncIterator[str]:
                """The stored events after ``last``, up to the job's end."""
                nonlocal last, current, ended
                events, now = await gw.store.events_and_job(job.id, last)
                current = now or current
                for ev in events:
                    last = ev.seq
                    yield frame(ev.type, fmt.payload(current, ev.type, ev.data), str(ev.seq))
                    if _ends(ev.type, ev.data):
                        ended = True
                        return

            for ev in missed:
                last = ev.seq
                yield frame(ev.type, fmt.payload(current, ev.type, ev.data), str(ev.seq))
                if _ends(ev.type, ev.data):
                    return
            if current.terminal and current.last_seq <= last:
                return
            if current.status in (JobStatus.RUNNING, JobStatus.CANCELING):
                yield frame("progress", {**current.progress.to_dict(), "job_id": job.id})
            while True:
                live = await _next(sub, KEEPALIVE_S)
                if live is None:
                    # A quiet while: look in the store too, for a notice from another
                    # gateway that was lost on the way.
                    async for chunk in catch_up():
                        yield chunk
                    if ended:
                        return
                    yield ": keep-alive\n\n"
                    continue
                if live.job_id != job.id:
                    continue
                if live.seq is None:
                    yield frame(live.type, {**live.data, "job_id": job.id})
                    continue
                if live.seq <= last:
                    continue
                if live.seq == last + 1:
                    # In order: the bus carries the stored data, so no store read is needed.
                    last = live.seq
                    yield frame(live.type, fmt.payload(current, live.type, live.data), str(last))
                    if _ends(live.type, live.data):
                        return
                    continue
                async for chunk in catch_up():
                    yield chunk
                if ended:
                    return
        except SubscriberOverflow:
            return
        finally:
            await sub.aclose()

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/events", response_class=StreamingResponse)
async def all_events(
    request: Request,
    gw: Annotated[Gateway, Depends(gateway)],
    who: Reader,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Every job of the caller on one connection; each event names its job. The event
    id is a cursor; send it back as Last-Event-ID to resume."""
    raw = _last_event_id(last_event_id, request)
    clock = gw.clock
    # A token that is not a cursor starts the stream afresh, as without one.
    cursor = StreamCursor.decode(raw, now=clock.now()) if raw else None
    fmt = Formatter(gw, renderer(request))
    sub = gw.bus.subscribe(who.id)
    #: until when every event was taken from the subscription. Invariant: the cursor's
    #: watermark stays at or below ``caught_up - SLACK``, so every event stored (``at``)
    #: before it was sent, given that a notice arrives within SLACK. A resume replays
    #: the named jobs' events after their seqs and any other job's from the horizon
    #: (watermark - SLACK) on; a job leaves the token only once its last event was sent
    #: before the horizon: nothing sent is replayed, nothing unsent skipped. A stream
    #: that lags and is then cut loses what came after caught_up, not what it sent last.
    caught_up = clock.now()

    async def stream() -> AsyncIterator[str]:
        nonlocal cursor, caught_up
        resumed = cursor is not None
        #: (when, how many notices were waiting then): once that many are taken, all
        #: that came before ``when`` is. A busy stream's subscription is seldom empty
        #: (progress notices keep it so): without this its watermark would stand still
        #: and its cursor would name every job it sent since.
        backlog: tuple[datetime, int] | None = None
        taken = 0
        cur = cursor or StreamCursor(watermark=clock.now())
        #: the static part of each job (id, params, …) read once per stream
        known: dict[str, Job] = {}
        try:
            yield "retry: 1000\n\n"

            async def catch_up(job: Job, since: datetime) -> AsyncIterator[str]:
                """The stored events not sent yet: after the job's seq, or for a job
                the cursor does not follow, those stored from ``since`` on."""
                after = cur.seqs.get(job.id)
                events = await gw.store.events_after(
                    job.id, after or 0, since=since if after is None else None
                )
                for ev in events:
                    terminal = _ends(ev.type, ev.data)
                    cur.advance(
                        job.id, ev.seq, caught_up=caught_up, sent=clock.now(), terminal=terminal
                    )
                    if terminal:
                        known.pop(job.id, None)
                    yield frame(ev.type, fmt.payload(job, ev.type, ev.data), cur.encode())

            if resumed:
                # Fixed before any event moves the watermark on.
                since = cur.horizon
                changed = await gw.store.jobs_changed_since(owner_id=who.id, since=since)
                for job in changed:
                    async for chunk in catch_up(job, since):
                        yield chunk
                    if not job.terminal:
                        # Each of its events up to the read is sent by now or was before
                        # the horizon: a later gap in its seqs is then seen as one.
                        cur.seqs[job.id] = max(cur.seqs.get(job.id, 0), job.last_seq)
                for job in changed:
                    if job.status in (JobStatus.RUNNING, JobStatus.CANCELING):
                        yield frame("progress", {**job.progress.to_dict(), "job_id": job.id})
            while True:
                # Each notice taken is dealt with (sent, or known to be) before the next.
                if sub.pending == 0:
                    caught_up, backlog = clock.now(), None
                elif backlog is None or taken >= backlog[1]:
                    if backlog is not None:
                        caught_up = backlog[0]
                    backlog, taken = (clock.now(), sub.pending), 0
                live = await _next(sub, KEEPALIVE_S)
                if live is None:
                    # A quiet while: the unfinished jobs this stream follows may have
                    # moved on another gateway whose notice was lost on the way.
                    for job in list(known.values()):
                        async for chunk in catch_up(job, cur.horizon):
                            yield chunk
                    yield ": keep-alive\n\n"
                    continue
                taken += 1
                if live.seq is None:
                    yield frame(live.type, {**live.data, "job_id": live.job_id})
                    continue
                if live.seq <= cur.seqs.get(live.job_id, 0) and live.job_id in cur.seqs:
                    continue
                if live.job_id not in known:
                    seen = await gw.store.get_job(live.job_id)
                    if seen is None:
                        continue
                    known[live.job_id] = seen
                job = known[live.job_id]
                if live.job_id not in cur.seqs:
                    # First sight of this job on this stream: start from the live event.
                    cur.seqs[live.job_id] = live.seq - 1
                if live.seq == cur.seqs[live.job_id] + 1:
                    terminal = _ends(live.type, live.data)
                    cur.advance(
                        live.job_id,
                        live.seq,
                        caught_up=caught_up,
                        sent=clock.now(),
                        terminal=terminal,
                    )
                    yield frame(live.type, fmt.payload(job, live.type, live.data), cur.encode())
                    if terminal:
                        known.pop(live.job_id, None)
                    continue
                async for chunk in catch_up(job, cur.horizon):
                    yield chunk
        except SubscriberOverflow:
            return
        finally:
            await sub.aclose()

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)
