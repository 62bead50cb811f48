"""In-memory stand-ins for the ports JobService uses, enough for its unit tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from comfygate.jobs.handoff import Claimed
from comfygate.jobs.model import (
    Attempt,
    Claim,
    Job,
    JobStatus,
    KeyReservation,
    LiveEvent,
    NewJob,
)
from comfygate.jobs.ports import ResolvedUpload
from comfygate.jobs.quota import Admission


class FakeStore:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        #: what each create_job was asked to check, in order
        self.admissions: list[Admission | None] = []
        #: raised by create_job instead of making the job (a refusal in its transaction)
        self.refusal: Exception | None = None
        #: what create_and_claim's claim takes: "new" (the job it made), another job, None
        self.claim_takes: Job | str | None = "new"
        #: the claims create_and_claim made, in order
        self.claims: list[Claim] = []

    async def get_job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def create_job(
        self,
        job: NewJob,
        *,
        now: datetime,
        max_queued: int | None = None,
        admission: Admission | None = None,
        reservation: KeyReservation | None = None,
    ) -> Job:
        self.admissions.append(admission)
        if self.refusal is not None:
            raise self.refusal
        created = Job(
            id=job.id,
            owner_id=job.owner_id,
            workflow=job.workflow,
            workflow_version=job.workflow_version,
            pool=job.pool,
            status=JobStatus.QUEUED,
            params=job.params,
            metadata=job.metadata,
            inputs=job.inputs,
            priority=job.priority,
            max_attempts=job.max_attempts,
            timeout_s=job.timeout_s,
            retry_of=job.retry_of,
            expires_at=job.expires_at,
            last_seq=1,
            created_at=now,
            updated_at=now,
        )
        self.jobs[job.id] = created
        return created

    async def create_and_claim(
        self,
        job: NewJob,
        claim: Claim,
        *,
        now: datetime,
        max_queued: int | None = None,
        admission: Admission | None = None,
        reservation: KeyReservation | None = None,
    ) -> tuple[Job, Claimed]:
        created = await self.create_job(job, now=now, admission=admission)
        self.claims.append(claim)
        taken = self.claim_takes
        if taken is None:
            return created, None
        if taken == "new":
            taken = self.set_status(created.id, JobStatus.RUNNING)
        assert isinstance(taken, Job)
        attempt = Attempt(
            job_id=taken.id,
            attempt=1,
            backend=claim.backend,
            prompt_id=claim.prompt_id,
            started_at=now,
        )
        return created, (taken, attempt)

    def set_status(self, job_id: str, status: JobStatus) -> Job:
        self.jobs[job_id] = replace(self.jobs[job_id], status=status)
        return self.jobs[job_id]


class FakeBlobs:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data

    async def get_bytes(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise FileNotFoundError(key) from None


class NoUploads:
    async def resolve(self, owner_id: str, upload_id: str) -> ResolvedUpload | None:
        return None


class FakeEvents:
    def __init__(self) -> None:
        self.published: list[LiveEvent] = []

    async def publish(self, event: LiveEvent) -> None:
        self.published.append(event)
