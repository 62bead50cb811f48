"""Jobs whose backend stopped reporting go back to the queue, or end.

A lease is renewed by its agent's heartbeat; when it runs out, the rescuer requeues the
job with backoff, fails it when its attempts are spent, and ends a job whose cancel was
asked for as canceled. The agent that lost the lease is fenced out: its later writes
find no row and it stops its prompt. This makes execution at-least-once; completion
stays exactly-once because only the lease holder can complete.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from comfygate.clock import Clock
from comfygate.jobs.announce import publish_status, write_error
from comfygate.jobs.backoff import retry_delay_s
from comfygate.jobs.doorbell import Doorbell
from comfygate.jobs.model import Job, JobStatus
from comfygate.jobs.ports import Blobs, EventSink, JobStore


class Rescuer:
    def __init__(
        self,
        *,
        store: JobStore,
        blobs: Blobs,
        events: EventSink,
        doorbell: Doorbell,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.events = events
        self.doorbell = doorbell
        self.clock = clock
        self.rng = rng or random.Random()

    def _retry_at(self, attempts: int) -> datetime:
        return self.clock.now() + timedelta(seconds=retry_delay_s(attempts, self.rng))

    async def run_once(self) -> list[Job]:
        """Rescue every expired lease, a batch at a time."""
        rescued: list[Job] = []
        while True:
            batch = await self.store.rescue_expired(now=self.clock.now(), retry_at=self._retry_at)
            for job in batch:
                await self._announce(job)
            rescued += batch
            if len(batch) < 100:
                return rescued

    async def _announce(self, job: Job) -> None:
        if job.status is JobStatus.FAILED and job.error is not None:
            await write_error(self.blobs, job.id, job.error, job.attempts)
        elif job.status is JobStatus.QUEUED:
            self.doorbell.ring(job.pool)
        await publish_status(self.events, job)
