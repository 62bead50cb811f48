"""Jobs and their timelines in memory, as a stream reads them (the StreamLog port),
on a FakeClock: what the store would hold while notices come, late, or never."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from comfygate.clock import FakeClock
from comfygate.events.memory import MemoryBus
from comfygate.jobs.model import Job, JobEvent, JobStatus, LiveEvent, Progress

OWNER = "alice"


class Timeline:
    def __init__(self, clock: FakeClock, bus: MemoryBus) -> None:
        self.clock, self.bus = clock, bus
        self.jobs: dict[str, Job] = {}
        self.events: dict[str, list[JobEvent]] = {}

    def job(self, owner_id: str = OWNER) -> str:
        """A new job, with no events yet."""
        now = self.clock.now()
        job = Job(
            id=str(uuid.uuid4()),
            owner_id=owner_id,
            workflow="w",
            workflow_version="1",
            pool="default",
            status=JobStatus.QUEUED,
            params={},
            metadata={},
            created_at=now,
            updated_at=now,
        )
        self.jobs[job.id] = job
        self.events[job.id] = []
        return job.id

    def store(self, job_id: str, status: str) -> LiveEvent:
        """A status change committed; its notice, not published yet."""
        return self.store_event(job_id, "status", {"status": status})

    def store_event(self, job_id: str, type_: str, data: dict[str, Any]) -> LiveEvent:
        timeline = self.events[job_id]
        at = self.clock.now()
        timeline.append(
            JobEvent(job_id=job_id, seq=len(timeline) + 1, type=type_, data=data, at=at)
        )
        job = self.jobs[job_id]
        status = JobStatus(data["status"]) if type_ == "status" else job.status
        self.jobs[job_id] = replace(job, status=status, last_seq=len(timeline), updated_at=at)
        return LiveEvent(
            job_id=job_id, owner_id=job.owner_id, type=type_, data=data, seq=len(timeline)
        )

    async def publish(self, job_id: str, status: str) -> LiveEvent:
        """A status change committed and its notice published."""
        live = self.store(job_id, status)
        await self.bus.publish(live)
        return live

    async def progress(self, job_id: str, value: float) -> None:
        """A live-only progress tick (never stored)."""
        self.jobs[job_id] = replace(self.jobs[job_id], progress=Progress(value=value))
        owner = self.jobs[job_id].owner_id
        data = {"value": value}
        await self.bus.publish(LiveEvent(job_id=job_id, owner_id=owner, type="progress", data=data))

    # -- StreamLog -------------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def events_and_job(self, job_id: str, seq: int) -> tuple[list[JobEvent], Job | None]:
        return await self.events_after(job_id, seq), self.jobs.get(job_id)

    async def events_after(
        self, job_id: str, seq: int, *, since: datetime | None = None
    ) -> list[JobEvent]:
        return [
            e
            for e in self.events.get(job_id, [])
            if e.seq > seq and (since is None or e.at >= since)
        ]

    async def jobs_changed_since(self, *, owner_id: str, since: datetime) -> list[Job]:
        found = [j for j in self.jobs.values() if j.owner_id == owner_id and j.updated_at >= since]
        return sorted(found, key=lambda j: j.updated_at)
