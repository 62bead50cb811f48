"""What a job stream sends, before any wire format: the router frames it (SSE).

Stored events (``status``, ``output``) carry an ``id`` a client resumes after;
``progress`` and ``preview`` are live only. A quiet while is a :data:`KEEP_ALIVE`, so
a connection that carries nothing is still seen to be alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple, Protocol

from comfygate.clock import Clock
from comfygate.jobs.model import Job, JobEvent, JobStatus, LiveEvent
from comfygate.jobs.ports import Subscription

#: how long a stream waits for an event before it sends a keep-alive (and looks in
#: the store for what a lost notice would have told it)
KEEPALIVE_S = 15.0


class Sent(NamedTuple):
    """One event to send. A tuple, not a frozen dataclass: one is made per event sent,
    and a tuple in 170 ns against 420."""

    type: str
    job_id: str
    data: dict[str, Any]
    #: the job as last read, whose static parts (params, …) a stored event is shown
    #: with; None for a live-only event, which is shown as it came
    job: Job | None = None
    #: what a client sends back to resume after this event; None when it cannot
    id: str | None = None


@dataclass(frozen=True, slots=True)
class KeepAlive:
    pass


KEEP_ALIVE: Final = KeepAlive()

Item = Sent | KeepAlive


class StreamLog(Protocol):
    """The store's reads a stream makes (the SQL store is one)."""

    async def get_job(self, job_id: str) -> Job | None: ...

    async def events_and_job(self, job_id: str, seq: int) -> tuple[list[JobEvent], Job | None]:
        """The job's events after ``seq``, then the job, read after them."""

    async def events_after(
        self, job_id: str, seq: int, *, since: datetime | None = None
    ) -> list[JobEvent]:
        """The job's events after ``seq``; with ``since``, only those stored from then."""

    async def jobs_changed_since(self, *, owner_id: str, since: datetime) -> list[Job]:
        """The owner's jobs updated at or after ``since``, oldest first."""


async def next_or_quiet(sub: Subscription, clock: Clock, wait_s: float) -> LiveEvent | None:
    """The next live event, or None after ``wait_s`` without one."""
    try:
        return await clock.wait_for(sub.__anext__(), wait_s)
    except TimeoutError:
        return None


def ends(event_type: str, data: dict[str, Any]) -> bool:
    """Whether this event is the job's last: its terminal status."""
    return event_type == "status" and JobStatus(data["status"]).terminal


def progress_of(job: Job) -> Sent | None:
    """A snapshot of a running job's progress, for a stream that (re)joins it."""
    if job.status not in (JobStatus.RUNNING, JobStatus.CANCELING):
        return None
    return Sent("progress", job.id, job.progress.to_dict())


def stored(ev: JobEvent, job: Job, event_id: str) -> Sent:
    return Sent(ev.type, job.id, ev.data, job, event_id)
