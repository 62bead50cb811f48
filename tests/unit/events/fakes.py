"""The store's timeline as the relay reads it, in memory (the EventLog port); held to
the real store by tests/integration/store/test_event_log.py."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from comfygate.jobs.model import JobEvent, LiveEvent


class FakeLog:
    """The store's timeline, shared by both gateways as the database would be."""

    def __init__(self) -> None:
        self.events: dict[str, list[JobEvent]] = {}
        self.reads = 0
        #: every job asked for, read by read
        self.jobs_read: list[str] = []

    def append(self, job_id: str, type_: str, data: dict[str, object]) -> LiveEvent:
        timeline = self.events.setdefault(job_id, [])
        ev = JobEvent(
            job_id=job_id, seq=len(timeline) + 1, type=type_, data=dict(data), at=datetime.now(UTC)
        )
        timeline.append(ev)
        return LiveEvent(job_id=job_id, owner_id="alice", type=type_, data=ev.data, seq=ev.seq)

    async def events_after_many(self, after: Mapping[str, int]) -> dict[str, list[JobEvent]]:
        self.reads += 1
        self.jobs_read += after
        found = {j: [e for e in self.events.get(j, []) if e.seq > seq] for j, seq in after.items()}
        return {j: events for j, events in found.items() if events}
