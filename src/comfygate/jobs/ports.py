"""The ports the job domain needs. ``store/``, ``events/`` and ``storage/`` implement them.

Every transition method states its source states and raises
:class:`~comfygate.errors.InvalidTransition` or :class:`~comfygate.errors.LeaseLost`
when the job is not in one of them; none silently succeeds.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from comfygate.jobs.handoff import Handoff
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
    OutputFile,
    Progress,
    QueueHead,
    WorkflowVersion,
)
from comfygate.jobs.quota import Admission


class ClientStore(Protocol):
    """What the client side of the job domain (JobService, and the removal of a
    deleted job's files) needs of the store: a slice of :class:`JobStore` small enough
    for a fake to honour in full (tests/unit/jobs/fakes.py, held to the real store by
    tests/integration/store/test_client_store.py)."""

    async def reserve_idempotency_key(
        self, *, owner_id: str, key: str, fingerprint: str, now: datetime
    ) -> IdempotencyRecord | None:
        """Insert an in-flight row for (owner, key); return the existing row instead
        if one exists (then nothing is inserted). Concurrent callers: exactly one gets
        None."""

    async def finish_idempotency_key(
        self, *, owner_id: str, key: str, status_code: int, body: dict[str, Any], job_id: str | None
    ) -> None: ...

    async def release_idempotency_key(self, reservation: KeyReservation) -> None:
        """Drop an in-flight row whose request failed before a job was made, so the
        client may retry with the same key."""

    async def take_over_idempotency_key(self, record: IdempotencyRecord, *, now: datetime) -> bool:
        """Reserve anew, at ``now``, an in-flight key whose request made no job; False
        when it changed meanwhile (another request took it, or a job was made)."""

    async def create_job(
        self,
        job: NewJob,
        *,
        now: datetime,
        max_queued: int | None = None,
        admission: Admission | None = None,
        reservation: KeyReservation | None = None,
    ) -> Job:
        """Insert a queued job and its first timeline event (seq 1, ``status``);
        ``QueueFull`` when its pool already holds ``max_queued`` queued jobs. With an
        ``admission``, in the same transaction: ``TooManyActiveJobs`` or
        ``QuotaExceeded`` for its owner, else its charge is recorded. With a
        reservation, the key's row names the job in the same transaction, or
        ``IdempotencyKeyInFlight`` when the reservation was taken over."""

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
        """``create_job``, then ``claim`` in the same transaction: a waiting lessee gets
        its lease with no transaction of its own. The claim takes what the queue puts
        first, which may be an older job than this one, or nothing."""

    async def get_job(self, job_id: str) -> Job | None: ...

    async def events_and_job(self, job_id: str, seq: int) -> tuple[list[JobEvent], Job | None]:
        """The job's events after ``seq``, then the job itself, read after them (so it is
        at least as new as the last of them), in one trip to the database."""

    async def finished_since(self, *, pool: str, since: datetime) -> int:
        """How many of the pool's jobs ended since then."""

    async def request_cancel(self, job_id: str, *, now: datetime) -> Job:
        """queued → canceled; running → canceling; canceling stays (no new event).
        Other states: InvalidTransition; an unknown job: NotFound."""

    async def expire_queued(self, *, now: datetime) -> list[Job]:
        """queued jobs past ``expires_at`` → expired."""

    async def delete_job(self, job_id: str, *, now: datetime) -> Job:
        """A finished job → tombstone (parameters, inputs, outputs, timeline gone).
        InvalidTransition while it runs; idempotent once deleted."""

    async def inputs_in_use(self, prefixes: Sequence[str]) -> set[str]:
        """The input folders (``inputs/{upload}``) some job still names."""


class JobStore(ClientStore, Protocol):
    # -- workflow versions ---------------------------------------------------------

    async def save_workflow_version(self, version: WorkflowVersion) -> None:
        """Insert the version unless it exists (versions are content hashes)."""

    async def get_workflow_version(self, version: str) -> WorkflowVersion | None: ...

    # -- idempotency keys ----------------------------------------------------------

    async def purge_idempotency_keys(self, *, older_than: datetime) -> int: ...

    # -- jobs: create and read -----------------------------------------------------

    async def list_jobs(
        self,
        *,
        owner_id: str | None,
        status: JobStatus | None = None,
        workflow: str | None = None,
        pool: str | None = None,
        before_id: str | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Newest first; ``before_id`` is the last id of the previous page; ``owner_id``
        None lists every owner's jobs (the admin view)."""

    async def jobs_changed_since(self, *, owner_id: str, since: datetime) -> list[Job]:
        """The owner's jobs whose ``updated_at`` is at or after ``since``, oldest first."""

    async def events_after(
        self, job_id: str, seq: int, *, since: datetime | None = None
    ) -> list[JobEvent]:
        """The job's events after ``seq``, in order; with ``since``, only those stored
        (``at``) at or after it."""

    async def events_after_many(self, after: Mapping[str, int]) -> dict[str, list[JobEvent]]:
        """For each job of ``after``, its events after the seq given, in order (jobs with
        none left out): one read for a burst of notices about several jobs."""

    async def attempts(self, job_id: str) -> list[Attempt]: ...

    async def queue_position(self, job: Job) -> int | None:
        """Jobs of the same pool that a claim would take before this one (0 = next)."""

    # -- the worker protocol, fenced by lease token ---------------------------------

    async def queue_head(self, *, pool: str, now: datetime, depth: int) -> QueueHead:
        """One read of the first ``depth`` claimable jobs of the pool, which every idle
        waiter can share: how many there are, and how many any backend may take."""

    async def has_claimable(
        self,
        *,
        pool: str,
        now: datetime,
        avoid: str | None = None,
        models: frozenset[str] | None = None,
    ) -> bool:
        """Whether a claim could succeed now; a read that takes no write lock. ``avoid``:
        the claiming backend, which retried jobs that failed on it skip for a while.
        ``models``: the claiming backend's model files; jobs that name others are
        skipped (None: every job fits)."""

    async def claim(
        self,
        *,
        pool: str,
        agent_id: str,
        backend: str,
        prompt_id: str,
        lease_token: str,
        lease_ttl_s: float,
        now: datetime,
        avoid: str | None = None,
        request_id: str | None = None,
        models: frozenset[str] | None = None,
    ) -> tuple[Job, Attempt] | None:
        """Lease the next queued job of ``pool`` (priority DESC, fair_key, id): status
        running, attempts + 1, a ``job_attempts`` row holding ``prompt_id``, a ``status``
        event. With ``avoid``, a retried job that failed on that backend is skipped
        until PREFER_OTHER_S after it became due. With ``request_id``, the lease is
        recorded under (``agent_id``, ``request_id``), and a lease recorded so before
        is returned instead of a new one (LeaseLost if it is no longer held)."""

    async def requested_lease(
        self, *, agent_id: str, request_id: str
    ) -> tuple[Job, Attempt] | None:
        """The lease recorded for this request id, None if none was; LeaseLost when it
        is no longer held under the token it was handed out with."""

    async def purge_lease_requests(self, *, keep_s: float, now: datetime) -> int:
        """Forget lease request ids recorded more than ``keep_s`` ago."""

    async def adopt(
        self,
        *,
        agent_id: str,
        backend: str,
        lease_ttl_s: float,
        new_token: Callable[[], str],
        now: datetime,
    ) -> list[tuple[Job, Attempt]]:
        """Leased jobs this agent held on this backend, under new tokens (after a
        restart of the gateway that ran the agent). Fenced on the old token."""

    async def heartbeat(
        self, job_id: str, lease_token: str, *, lease_ttl_s: float, now: datetime
    ) -> Job:
        """Renew the lease. Fenced: LeaseLost when id/token/status do not match."""

    async def save_progress(self, job_id: str, lease_token: str, progress: Progress) -> Job:
        """Store the latest progress snapshot on the job row (no timeline event). Fenced."""

    async def complete(
        self,
        job_id: str,
        lease_token: str,
        outputs: Sequence[OutputFile],
        *,
        now: datetime,
        progress: Progress | None = None,
    ) -> Job:
        """running|canceling → succeeded, with one ``output`` event per output and a
        ``status`` event; the attempt's outcome is ``succeeded``. Fenced."""

    async def fail(
        self,
        job_id: str,
        lease_token: str,
        failure: JobFailure,
        *,
        retry_at: datetime | None,
        now: datetime,
    ) -> Job:
        """running|canceling → queued (``retry_at`` set, not when canceling) or failed.
        Fenced."""

    async def finish_cancel(self, job_id: str, lease_token: str, *, now: datetime) -> Job:
        """canceling|running → canceled, after the agent stopped the prompt. Fenced."""

    async def expire_outputs(self, *, finished_before: datetime, now: datetime) -> list[Job]:
        """Mark a batch of succeeded jobs past output retention; returns them."""

    async def purge_jobs(self, *, finished_before: datetime) -> list[Job]:
        """Remove a batch of jobs past retention, with timeline and attempts."""

    async def finished_between(self, *, since: datetime, until: datetime) -> list[Job]:
        """Jobs that ended in [since, until)."""

    async def rescue_expired(
        self, *, now: datetime, retry_at: Callable[[int], datetime], limit: int = 100
    ) -> list[Job]:
        """Leases that ran out: canceling → canceled, attempts spent → failed, else
        queued at ``retry_at(attempts)``; the attempt's outcome is ``lease_expired``.
        Safe to run in several gateways at once."""


class EventSink(Protocol):
    """Where committed changes and transient progress go, after the transaction."""

    async def publish(self, event: LiveEvent) -> None: ...


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[LiveEvent]: ...

    async def __anext__(self) -> LiveEvent: ...

    @property
    def pending(self) -> int:
        """Events received but not yet taken: none means every event published so far
        was taken (a subscription that falls behind is cut, losing later ones)."""
        ...

    async def aclose(self) -> None: ...


class EventSource(Protocol):
    def subscribe(self, owner_id: str) -> Subscription:
        """Live events of one owner's jobs from the moment this returns, until closed."""

    def subscribe_all(self) -> Subscription:
        """Live events of every owner's jobs, likewise (the ops dashboard)."""


class StoredObject(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def modified_at(self) -> datetime | None: ...


class Blobs(Protocol):
    """The slice of object storage the domain uses."""

    async def list(self, prefix: str) -> Sequence[StoredObject]:
        """Objects under the folder ``prefix``, in key order."""

    async def delete(self, key: str) -> None: ...

    async def delete_prefix(self, prefix: str) -> int: ...

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> tuple[int, str]:
        """Store a stream; returns (bytes, sha256 hex)."""

    async def get_bytes(self, key: str) -> bytes: ...

    async def signed_url(self, key: str, ttl_s: int) -> tuple[str, datetime]: ...

    async def abort_open_parts(self, prefix: str, *, begun_before: datetime) -> int:
        """Drop unfinished multipart uploads under ``prefix`` begun before then."""


@dataclass(frozen=True)
class ResolvedUpload:
    key: str
    filename: str
    sha256: str


class UploadResolver(Protocol):
    async def resolve(self, owner_id: str, upload_id: str) -> ResolvedUpload | None:
        """A completed upload of this owner, or None."""


class RemoteImages(Protocol):
    async def fetch(self, owner_id: str, url: str) -> str:
        """Fetch an image URL into a completed upload of this owner; its id. Raises
        InvalidUpload (or UnsafeAddress) saying why not."""


class WebhookUrls(Protocol):
    async def check(self, url: str) -> None:
        """Raise unless the gateway may send webhooks to this URL."""


class Waiters(Protocol):
    """The agents waiting for work on this gateway (the WorkerGate), as a submit sees
    them."""

    def handoff(self, pool: str, models: frozenset[str]) -> Handoff | None:
        """A waiter whose backend fits a job of ``pool`` needing ``models``, taken out
        of the waiting, with the claim to make for it; None when none waits."""

    def queued_here(self, pool: str, models: frozenset[str]) -> None:
        """A job of ``pool`` needing ``models`` was queued here and stays queued: ring
        its pool's bell."""
