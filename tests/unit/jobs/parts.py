"""The ports a JobService is built on in the unit tests, and the jobs they start from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from comfygate.clock import FakeClock
from comfygate.ids import new_id
from comfygate.jobs.doorbell import Doorbell
from comfygate.jobs.keys import prompt_key, request_key
from comfygate.jobs.model import InputFile, JobStatus, NewJob
from comfygate.jobs.ports import Waiters
from comfygate.jobs.quota import QuotaPolicy
from comfygate.jobs.service import JobService
from comfygate.storage.local import LocalStorage
from tests.unit.jobs.fakes import FakeEvents, FakeStore, NoUploads

JSON = "application/json"

#: a graph naming one model file: only a backend that has it may take the job
NEEDS_A_MODEL = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}}
}


@dataclass
class Parts:
    store: FakeStore
    blobs: LocalStorage
    events: FakeEvents
    doorbell: Doorbell
    clock: FakeClock

    def service(
        self,
        *,
        waiters: Waiters | None = None,
        quotas: QuotaPolicy | None = None,
        max_queue_depth: int | None = None,
    ) -> JobService:
        """A JobService on these parts, with no workflow folder and no uploads."""
        return JobService(
            store=self.store,
            blobs=self.blobs,
            events=self.events,
            uploads=NoUploads(),
            doorbell=self.doorbell,
            workflows={},
            clock=self.clock,
            waiters=waiters,
            quotas=quotas,
            max_queue_depth=max_queue_depth,
        )

    async def finished_job(
        self,
        status: JobStatus = JobStatus.FAILED,
        *,
        queue_ttl_s: float | None = 600,
        graph: dict[str, Any] | None = None,
    ) -> str:
        """A job of alice's that ended with ``status``, its graph and request stored as
        a submit stores them (a job to retry)."""
        job_id = new_id()
        graph = graph or {"1": {"class_type": "X", "inputs": {}}}
        await self.blobs.put_bytes(prompt_key(job_id), json.dumps(graph).encode(), JSON)
        request = {"workflow": "wf", "params": {"seed": 7}, "owner_id": "alice", "accepted_at": "-"}
        await self.blobs.put_bytes(request_key(job_id), json.dumps(request).encode(), JSON)
        now = self.clock.now()
        await self.store.create_job(
            NewJob(
                id=job_id,
                owner_id="alice",
                workflow="wf",
                workflow_version="v-old",
                pool="gpu",
                params={"seed": 7},
                metadata={"tag": "x"},
                inputs=(
                    InputFile(key="inputs/u1/a.png", filename="a.png", bindings=(("3", "image"),)),
                ),
                priority=7,
                max_attempts=2,
                timeout_s=99.0,
                expires_at=None if queue_ttl_s is None else now + timedelta(seconds=queue_ttl_s),
            ),
            now=now,
        )
        self.store.set_status(job_id, status, now)
        return job_id
