"""Every job of one owner on one stream; each event names its job, and its id is a
:class:`StreamCursor` that a resume sends back.

Invariant: the cursor's watermark stays at or below ``caught_up - SLACK``, where
``caught_up`` is until when every event was taken from the subscription; so every
event stored (``at``) before the watermark was sent, given that a notice arrives
within SLACK. A resume replays the named jobs' events after their seqs and any other
job's from the horizon (watermark - SLACK) on; a job leaves the token only once its
last event was sent before the horizon: nothing sent is replayed, nothing unsent
skipped. A stream that lags and is then cut loses what came after caught_up, not what
it sent last.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import Any

from comfygate.clock import Clock
from comfygate.events.cursor import StreamCursor
from comfygate.events.memory import SubscriberOverflow
from comfygate.events.stream import (
    KEEP_ALIVE,
    KEEPALIVE_S,
    Item,
    Sent,
    StreamLog,
    ends,
    next_or_quiet,
    progress_of,
    stored,
)
from comfygate.jobs.model import Job, LiveEvent
from comfygate.jobs.ports import EventSource, Subscription


def open_all_jobs_stream(
    source: EventSource,
    log: StreamLog,
    clock: Clock,
    *,
    owner_id: str,
    last_event_id: str | None = None,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncGenerator[Item]:
    """The owner's stream, resumed after ``last_event_id``; subscribed before it is
    returned. A token that is not a cursor starts the stream afresh, as without one."""
    cursor = StreamCursor.decode(last_event_id, now=clock.now()) if last_event_id else None
    sub = source.subscribe(owner_id)
    return _AllJobs(sub, log, clock, owner_id, cursor, keepalive_s).run()


class _AllJobs:
    def __init__(
        self,
        sub: Subscription,
        log: StreamLog,
        clock: Clock,
        owner_id: str,
        cursor: StreamCursor | None,
        keepalive_s: float,
    ) -> None:
        self.sub, self.log, self.clock, self.owner_id = sub, log, clock, owner_id
        self.keepalive_s = keepalive_s
        self.resumed = cursor is not None
        #: until when every event was taken from the subscription (see the module doc)
        self.caught_up = clock.now()
        self.cur = cursor or StreamCursor(watermark=clock.now())
        #: the static part of each job (id, params, …) read once per stream
        self.known: dict[str, Job] = {}
        #: (when, how many notices were waiting then): once that many are taken, all
        #: that came before ``when`` is. A busy stream's subscription is seldom empty
        #: (progress notices keep it so): without this its watermark would stand still
        #: and its cursor would name every job it sent since.
        self.backlog: tuple[datetime, int] | None = None
        self.taken = 0

    async def run(self) -> AsyncGenerator[Item]:
        try:
            if self.resumed:
                async for item in self._replay():
                    yield item
            while True:
                # Each notice taken is dealt with (sent, or known to be) before the next.
                self._mark()
                live = await next_or_quiet(self.sub, self.clock, self.keepalive_s)
                if live is None:
                    async for item in self._quiet():
                        yield item
                    continue
                self.taken += 1
                # The hot path, one notice in order, makes no generator of its own.
                taken = await self._take(live)
                if isinstance(taken, Sent):
                    yield taken
                elif taken is not None:
                    async for item in self._catch_up(taken, self.cur.horizon):
                        yield item
        except SubscriberOverflow:
            return  # too far behind: the client resumes with its cursor
        finally:
            await self.sub.aclose()

    def _sent(self, job: Job, seq: int, event_type: str, data: dict[str, Any]) -> str:
        """Moves the cursor past event ``seq`` of ``job``; the id to send it with."""
        terminal = ends(event_type, data)
        self.cur.advance(
            job.id, seq, caught_up=self.caught_up, sent=self.clock.now(), terminal=terminal
        )
        if terminal:
            self.known.pop(job.id, None)
        return self.cur.encode()

    async def _catch_up(self, job: Job, since: datetime) -> AsyncIterator[Item]:
        """The stored events not sent yet: after the job's seq, or for a job the cursor
        does not follow, those stored from ``since`` on."""
        after = self.cur.seqs.get(job.id)
        events = await self.log.events_after(
            job.id, after or 0, since=since if after is None else None
        )
        for ev in events:
            yield stored(ev, job, self._sent(job, ev.seq, ev.type, ev.data))

    async def _replay(self) -> AsyncIterator[Item]:
        # Fixed before any event moves the watermark on.
        since = self.cur.horizon
        changed = await self.log.jobs_changed_since(owner_id=self.owner_id, since=since)
        for job in changed:
            async for item in self._catch_up(job, since):
                yield item
            if not job.terminal:
                # Each of its events up to the read is sent by now or was before the
                # horizon: a later gap in its seqs is then seen as one.
                self.cur.seqs[job.id] = max(self.cur.seqs.get(job.id, 0), job.last_seq)
        for job in changed:
            snapshot = progress_of(job)
            if snapshot is not None:
                yield snapshot

    def _mark(self) -> None:
        """Moves ``caught_up`` on as far as what was taken allows."""
        if self.sub.pending == 0:
            self.caught_up, self.backlog = self.clock.now(), None
        elif self.backlog is None or self.taken >= self.backlog[1]:
            if self.backlog is not None:
                self.caught_up = self.backlog[0]
            self.backlog, self.taken = (self.clock.now(), self.sub.pending), 0

    async def _quiet(self) -> AsyncIterator[Item]:
        """A quiet while: the unfinished jobs this stream follows may have moved on
        another gateway whose notice was lost on the way."""
        for job in list(self.known.values()):
            async for item in self._catch_up(job, self.cur.horizon):
                yield item
        yield KEEP_ALIVE

    async def _take(self, live: LiveEvent) -> Sent | Job | None:
        """What a notice gives: an event to send, or the job whose events must be read
        from the store (a gap in its seqs), or nothing (one sent already, or a job gone)."""
        if live.seq is None:
            return Sent(live.type, live.job_id, live.data)
        seqs = self.cur.seqs
        if live.seq <= seqs.get(live.job_id, 0) and live.job_id in seqs:
            return None
        if live.job_id not in self.known:
            seen = await self.log.get_job(live.job_id)
            if seen is None:
                return None
            self.known[live.job_id] = seen
        job = self.known[live.job_id]
        if live.job_id not in seqs:
            # First sight of this job on this stream: start from the live event.
            seqs[live.job_id] = live.seq - 1
        if live.seq == seqs[live.job_id] + 1:
            event_id = self._sent(job, live.seq, live.type, live.data)
            return Sent(live.type, job.id, live.data, job, event_id)
        return job
