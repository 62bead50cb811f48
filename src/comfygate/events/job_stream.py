"""One job's stream: what it missed from the store, then live, to the job's end.

A resume replays the stored events after the seq it names, then sends a current
progress snapshot, then goes live. Live events come from the bus in order as a rule;
one out of order (or a quiet while, when a notice from another gateway may have been
lost) sends the client to the store for what it lacks.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from comfygate.clock import Clock
from comfygate.events import stream
from comfygate.events.memory import SubscriberOverflow
from comfygate.events.stream import KEEP_ALIVE, KEEPALIVE_S, Item, Sent, StreamLog
from comfygate.jobs.model import Job, JobEvent
from comfygate.jobs.ports import EventSource, Subscription

#: the opening read, as the viewer may see it: the job's events after ``seq`` and the
#: job read after them (raises when the viewer may not see the job)
Opening = Callable[[int], Awaitable[tuple[list[JobEvent], Job]]]


async def open_job_stream(
    source: EventSource,
    log: StreamLog,
    clock: Clock,
    *,
    viewer_id: str,
    read: Opening,
    after: int = 0,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncGenerator[Item]:
    """The job's stream after ``after``, subscribed before it is returned, so that a
    refusal (no such job) is raised here, before anything is sent."""
    # Subscribed before the read, so nothing published meanwhile is missed; the viewer
    # is the owner but for an admin looking on.
    sub = source.subscribe(viewer_id)
    try:
        missed, job = await read(after)
        if job.owner_id != viewer_id:
            await sub.aclose()
            sub = source.subscribe(job.owner_id)
            missed, job = await read(after)
    except BaseException:
        await sub.aclose()
        raise
    return _follow(sub, log, clock, job, missed, after, keepalive_s)


async def _follow(
    sub: Subscription,
    log: StreamLog,
    clock: Clock,
    job: Job,
    missed: list[JobEvent],
    after: int,
    keepalive_s: float,
) -> AsyncGenerator[Item]:
    last = after
    current = job
    ended = False

    async def catch_up() -> AsyncIterator[Item]:
        """The stored events after ``last``, up to the job's end."""
        nonlocal last, current, ended
        events, now = await log.events_and_job(job.id, last)
        current = now or current
        for ev in events:
            last = ev.seq
            yield stream.stored(ev, current, str(ev.seq))
            if stream.ends(ev.type, ev.data):
                ended = True
                return

    try:
        for ev in missed:
            last = ev.seq
            yield stream.stored(ev, current, str(ev.seq))
            if stream.ends(ev.type, ev.data):
                return
        if current.terminal and current.last_seq <= last:
            return
        snapshot = stream.progress_of(current)
        if snapshot is not None:
            yield snapshot
        while True:
            live = await stream.next_or_quiet(sub, clock, keepalive_s)
            if live is None:
                # A quiet while: look in the store too, for a notice from another
                # gateway that was lost on the way.
                async for item in catch_up():
                    yield item
                if ended:
                    return
                yield KEEP_ALIVE
                continue
            if live.job_id != job.id:
                continue
            if live.seq is None:
                yield Sent(live.type, job.id, live.data)
                continue
            if live.seq <= last:
                continue
            if live.seq == last + 1:
                # In order: the bus carries the stored data, so no store read is needed.
                last = live.seq
                yield Sent(live.type, job.id, live.data, current, str(last))
                if stream.ends(live.type, live.data):
                    return
                continue
            async for item in catch_up():
                yield item
            if ended:
                return
    except SubscriberOverflow:
        return  # too far behind: the client resumes from the store
    finally:
        await sub.aclose()
