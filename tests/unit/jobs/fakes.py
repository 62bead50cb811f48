"""In-memory stand-ins for the ports JobService uses.

``FakeStore`` honours the whole :class:`~comfygate.jobs.ports.ClientStore`, and
tests/integration/store/test_client_store.py runs the same checks against it and the
real store, so a unit test of the service cannot pass on behaviour the database lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from comfygate.errors import (
    IdempotencyKeyInFlight,
    InvalidTransition,
    NotFound,
    QueueFull,
    TooManyActiveJobs,
)
from comfygate.jobs.model import (
    Attempt,
    Claim,
    IdempotencyRecord,
    Job,
    JobEvent,
    JobFailure,
    JobStatus,
    KeyReservation,
    LiveEvent,
    NewJob,
)
from comfygate.jobs.ports import ResolvedUpload
from comfygate.jobs.quota import Admission
from comfygate.jobs.snapshot import status_data

ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELING})


class FakeStore:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.events: dict[str, list[JobEvent]] = {}
        self.keys: dict[tuple[str, str], IdempotencyRecord] = {}
        #: the model files each job's graph names
        self.models: dict[str, frozenset[str]] = {}
        #: each pool's virtual time: the fair key of its latest claim
        self.pool_clocks: dict[str, int] = {}
        #: what each create_job was asked to check, in order
        self.admissions: list[Admission | None] = []

    # -- idempotency keys ------------------------------------------------------------
    async def reserve_idempotency_key(
        self, *, owner_id: str, key: str, fingerprint: str, now: datetime
    ) -> IdempotencyRecord | None:
        existing = self.keys.get((owner_id, key))
        if existing is not None:
            return existing
        self.keys[owner_id, key] = IdempotencyRecord(
            owner_id=owner_id,
            key=key,
            fingerprint=fingerprint,
            status_code=None,
            body=None,
            job_id=None,
            created_at=now,
        )
        return None

    async def finish_idempotency_key(
        self, *, owner_id: str, key: str, status_code: int, body: dict[str, Any], job_id: str | None
    ) -> None:
        record = self.keys.get((owner_id, key))
        if record is not None:
            self.keys[owner_id, key] = replace(
                record, status_code=status_code, body=body, job_id=job_id
            )

    def _reserved(self, reservation: KeyReservation) -> IdempotencyRecord | None:
        """The key's record while this reservation still holds it, before any job."""
        record = self.keys.get((reservation.owner_id, reservation.key))
        if (
            record is None
            or record.created_at != reservation.reserved_at
            or record.job_id is not None
            or record.status_code is not None
        ):
            return None
        return record

    async def release_idempotency_key(self, reservation: KeyReservation) -> None:
        if self._reserved(reservation) is not None:
            del self.keys[reservation.owner_id, reservation.key]

    async def take_over_idempotency_key(self, record: IdempotencyRecord, *, now: datetime) -> bool:
        was = KeyReservation(
            owner_id=record.owner_id, key=record.key, reserved_at=record.created_at
        )
        held = self._reserved(was)
        if held is None:
            return False
        self.keys[record.owner_id, record.key] = replace(held, created_at=now)
        return True

    # -- jobs: create and read -------------------------------------------------------
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
        # Every check before any write: the real store's refusals roll its transaction back.
        queued = self._queued(job.pool)
        if max_queued is not None and len(queued) >= max_queued:
            raise QueueFull(details={"pool": job.pool, "queued": len(queued)})
        if admission is not None:
            self._admit(job.owner_id, admission)
        if reservation is not None and self._reserved(reservation) is None:
            raise IdempotencyKeyInFlight
        owner_last = max((j.fair_key for j in queued if j.owner_id == job.owner_id), default=0)
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
            fair_key=max(owner_last, self.pool_clocks.get(job.pool, 0)) + 1,
            max_attempts=job.max_attempts,
            timeout_s=job.timeout_s,
            retry_on_timeout=job.retry_on_timeout,
            retry_of=job.retry_of,
            expires_at=job.expires_at,
            webhook=job.webhook,
            created_at=now,
            updated_at=now,
        )
        self.jobs[job.id] = created
        self.models[job.id] = frozenset(job.models)
        self.events[job.id] = []
        self._tell(created, now)
        if reservation is not None:
            key = (reservation.owner_id, reservation.key)
            self.keys[key] = replace(self.keys[key], job_id=job.id)
        return self.jobs[job.id]

    def _admit(self, owner_id: str, admission: Admission) -> None:
        # Charges and budgets live in their own tables, which no client-side read shows;
        # a test that needs them belongs with the real store.
        assert admission.default_budget is None, "the fake keeps no budgets"
        if admission.max_active is None:
            return
        active = sum(1 for j in self.jobs.values() if j.owner_id == owner_id and j.status in ACTIVE)
        if active >= admission.max_active:
            raise TooManyActiveJobs(
                f"{active} of your jobs are queued or running; the limit is {admission.max_active}",
                details={"active_jobs": active, "max_active": admission.max_active},
            )

    def _queued(self, pool: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.pool == pool and j.status is JobStatus.QUEUED]

    def _tell(self, job: Job, now: datetime) -> Job:
        """Store the job with its next ``status`` event, as every transition does."""
        job = replace(job, last_seq=job.last_seq + 1, updated_at=now)
        self.jobs[job.id] = job
        self.events[job.id].append(
            JobEvent(job_id=job.id, seq=job.last_seq, type="status", data=status_data(job), at=now)
        )
        return job

    async def create_and_claim(
        self,
        job: NewJob,
        claim: Claim,
        *,
        now: datetime,
        max_queued: int | None = None,
        admission: Admission | None = None,
        reservation: KeyReservation | None = None,
    ) -> tuple[Job, tuple[Job, Attempt] | None]:
        created = await self.create_job(
            job, now=now, max_queued=max_queued, admission=admission, reservation=reservation
        )
        return created, self._claim(claim, now)

    def _claim(self, claim: Claim, now: datetime) -> tuple[Job, Attempt] | None:
        # No job here was ever failed by a backend, so ``avoid`` has nothing to skip.
        fits = [
            j
            for j in self._queued(claim.pool)
            if (j.expires_at is None or j.expires_at > now)
            and (claim.models is None or self.models[j.id] <= claim.models)
        ]
        if not fits:
            return None
        first = min(fits, key=lambda j: (-j.priority, j.fair_key, j.id))
        self.pool_clocks[claim.pool] = max(self.pool_clocks.get(claim.pool, 0), first.fair_key)
        running = self._tell(
            replace(
                first,
                status=JobStatus.RUNNING,
                attempts=first.attempts + 1,
                lease_owner=claim.agent_id,
                lease_token=claim.lease_token,
                started_at=first.started_at or now,
            ),
            now,
        )
        attempt = Attempt(
            job_id=running.id,
            attempt=running.attempts,
            backend=claim.backend,
            prompt_id=claim.prompt_id,
            started_at=now,
        )
        return running, attempt

    async def get_job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def events_and_job(self, job_id: str, seq: int) -> tuple[list[JobEvent], Job | None]:
        return [e for e in self.events.get(job_id, []) if e.seq > seq], self.jobs.get(job_id)

    async def finished_since(self, *, pool: str, since: datetime) -> int:
        return sum(
            1
            for j in self.jobs.values()
            if j.pool == pool and j.finished_at is not None and j.finished_at >= since
        )

    # -- client-side transitions -----------------------------------------------------
    def _job(self, job_id: str) -> Job:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise NotFound(f"no job {job_id!r}") from None

    async def request_cancel(self, job_id: str, *, now: datetime) -> Job:
        job = self._job(job_id)
        if job.status is JobStatus.QUEUED:
            return self._tell(replace(job, status=JobStatus.CANCELED, finished_at=now), now)
        if job.status is JobStatus.RUNNING:
            return self._tell(
                replace(job, status=JobStatus.CANCELING, cancel_requested_at=now), now
            )
        if job.status is JobStatus.CANCELING:
            return job
        raise InvalidTransition(f"the job is already {job.status.value}")

    async def expire_queued(self, *, now: datetime) -> list[Job]:
        due = [
            j
            for j in self.jobs.values()
            if j.status is JobStatus.QUEUED and j.expires_at is not None and j.expires_at <= now
        ]
        failure = JobFailure(code="expired", message="no backend took the job in time")
        return [
            self._tell(replace(j, status=JobStatus.EXPIRED, finished_at=now, error=failure), now)
            for j in due
        ]

    async def delete_job(self, job_id: str, *, now: datetime) -> Job:
        job = self._job(job_id)
        if job.deleted_at is not None:
            return job
        if not job.terminal:
            raise InvalidTransition(f"the job is {job.status.value}: cancel it first")
        self.events[job_id] = []
        self.jobs[job_id] = replace(
            job, deleted_at=now, params={}, metadata={}, inputs=(), outputs=(), updated_at=now
        )
        return self.jobs[job_id]

    async def inputs_in_use(self, prefixes: Sequence[str]) -> set[str]:
        keys = [i.key for j in self.jobs.values() for i in j.inputs]
        return {p for p in prefixes if any(k.startswith(f"{p}/") for k in keys)}

    # -- for the tests' set-up: what an agent would have done ---------------------------
    def set_status(self, job_id: str, status: JobStatus, now: datetime) -> Job:
        job = self._job(job_id)
        ended = now if status.terminal else None
        return self._tell(replace(job, status=status, finished_at=ended), now)


class FakeEvents:
    def __init__(self) -> None:
        self.published: list[LiveEvent] = []
        #: called with each event before it is kept (a test's probe; may raise)
        self.before: Callable[[LiveEvent], None] | None = None

    async def publish(self, event: LiveEvent) -> None:
        if self.before is not None:
            self.before(event)
        self.published.append(event)


class NoUploads:
    async def resolve(self, owner_id: str, upload_id: str) -> ResolvedUpload | None:
        return None
