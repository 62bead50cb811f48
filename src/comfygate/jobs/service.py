"""Client-side job operations: submit, read, cancel, retry. Publishes after every commit."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from comfygate.clock import Clock
from comfygate.contracts import (
    Workflow,
    canonical_json,
    image_bindings,
    patch_graph,
    validate_params,
)
from comfygate.contracts.models import models_needed
from comfygate.errors import (
    ComfygateError,
    Conflict,
    IdempotencyKeyInFlight,
    IdempotencyKeyReuse,
    InvalidParams,
    InvalidTransition,
    JobDeleted,
    NotFound,
    QueueFull,
    QuotaExceeded,
    TooManyActiveJobs,
)
from comfygate.ids import new_id
from comfygate.jobs.announce import publish_status
from comfygate.jobs.doorbell import Doorbell
from comfygate.jobs.fresh_prompts import FreshPrompts
from comfygate.jobs.handoff import Claimed
from comfygate.jobs.keys import cancel_bell, prompt_key, request_key
from comfygate.jobs.metadata import check_metadata
from comfygate.jobs.model import (
    Claim,
    IdempotencyRecord,
    InputFile,
    Job,
    JobEvent,
    KeyReservation,
    NewJob,
)
from comfygate.jobs.ports import (
    Blobs,
    ClientStore,
    EventSink,
    RemoteImages,
    UploadResolver,
    Waiters,
    WebhookUrls,
)
from comfygate.jobs.quota import Admission, QuotaPolicy
from comfygate.jobs.sweeper import remove_job_files
from comfygate.jobs.webhooks import WebhookTarget
from comfygate.principal import Principal

log = logging.getLogger(__name__)


def _field(path: str, message: str, keyword: str) -> InvalidParams:
    return InvalidParams(
        f"{path}: {message}", details=[{"path": path, "message": message, "keyword": keyword}]
    )


JSON_TYPE = "application/json"

#: an idempotency key in flight this long whose request made no job is taken over by
#: its retry: the first request died with its gateway (the takeover is fenced, so a
#: first request that was only slow cannot make a second job)
IN_FLIGHT_S = 10.0


@dataclass(frozen=True)
class Submitted:
    status_code: int
    body: dict[str, Any]
    job_id: str | None
    replayed: bool


class JobService:
    def __init__(
        self,
        *,
        store: ClientStore,
        blobs: Blobs,
        events: EventSink,
        uploads: UploadResolver,
        doorbell: Doorbell,
        workflows: Mapping[str, Workflow],
        clock: Clock,
        rng: random.Random | None = None,
        max_queue_depth: int | None = None,
        remote_images: RemoteImages | None = None,
        webhook_urls: WebhookUrls | None = None,
        quotas: QuotaPolicy | None = None,
        log_prompts: bool = False,
        fresh: FreshPrompts | None = None,
        waiters: Waiters | None = None,
    ) -> None:
        self.store = store
        #: the agents waiting here (the WorkerGate): one that fits a job gets it in the
        #: job's own transaction; else it hears of the job instead of the pool's bell
        self.waiters = waiters
        #: shared with the WorkerGate: leases handed out here carry graphs from it
        self.fresh = fresh
        #: parameters are the users' words: logged only when the operator asks
        self.log_prompts = log_prompts
        self.blobs = blobs
        self.events = events
        self.uploads = uploads
        self.doorbell = doorbell
        self.workflows = workflows
        self.clock = clock
        self.rng = rng or random.SystemRandom()
        self.max_queue_depth = max_queue_depth
        self.remote_images = remote_images
        self.webhook_urls = webhook_urls
        self.quotas = quotas or QuotaPolicy()

    def workflow(self, name: str) -> Workflow:
        try:
            return self.workflows[name]
        except KeyError:
            raise NotFound(f"no workflow named {name!r}") from None

    async def submit(
        self,
        principal: Principal,
        workflow_name: str,
        params: dict[str, Any],
        metadata: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        file_digests: tuple[str, ...] = (),
        render: Callable[[Job], dict[str, Any]],
        webhook: Any = None,
    ) -> Submitted:
        """Accept a job. With an idempotency key, a replay returns the first answer
        (image URLs are fetched once, by the first request)."""
        workflow = self.workflow(workflow_name)
        metadata = check_metadata(metadata)
        if idempotency_key is None:
            job = await self._create(principal, workflow, params, metadata, webhook)
            return Submitted(202, render(job), job.id, replayed=False)

        fingerprint = hashlib.sha256(
            canonical_json(
                {
                    "workflow": workflow_name,
                    "params": params,
                    "metadata": metadata,
                    "files": sorted(file_digests),
                    "webhook": webhook,
                }
            )
        ).hexdigest()
        now = self.clock.now()
        reservation = KeyReservation(owner_id=principal.id, key=idempotency_key, reserved_at=now)
        existing = await self.store.reserve_idempotency_key(
            owner_id=principal.id, key=idempotency_key, fingerprint=fingerprint, now=now
        )
        if existing is not None:
            replay = await self._replay(existing, fingerprint, render, now=now)
            if replay is not None:
                return replay
        try:
            job = await self._create(principal, workflow, params, metadata, webhook, reservation)
        except BaseException:
            # Refused requests are not remembered (Stripe): the client may fix and retry.
            await self.store.release_idempotency_key(reservation)
            raise
        body = render(job)
        await self.store.finish_idempotency_key(
            owner_id=principal.id, key=idempotency_key, status_code=202, body=body, job_id=job.id
        )
        return Submitted(202, body, job.id, replayed=False)

    async def _replay(
        self,
        existing: IdempotencyRecord,
        fingerprint: str,
        render: Callable[[Job], dict[str, Any]],
        *,
        now: datetime,
    ) -> Submitted | None:
        """The answer to a key seen before; None when its first request died (with its
        gateway) before making a job, and this one has taken the key over."""
        answered = existing.status_code is not None and existing.body is not None
        abandoned = now - existing.created_at >= timedelta(seconds=IN_FLIGHT_S)
        if not answered and existing.job_id is None and not abandoned:
            raise IdempotencyKeyInFlight
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReuse
        if existing.status_code is not None and existing.body is not None:
            return Submitted(existing.status_code, existing.body, existing.job_id, replayed=True)
        if existing.job_id is not None:
            # The job was made but its gateway died before storing the answer.
            job = await self.store.get_job(existing.job_id)
            if job is None:
                raise IdempotencyKeyInFlight
            body = render(job)
            await self.store.finish_idempotency_key(
                owner_id=existing.owner_id,
                key=existing.key,
                status_code=202,
                body=body,
                job_id=job.id,
            )
            return Submitted(202, body, job.id, replayed=True)
        if await self.store.take_over_idempotency_key(existing, now=now):
            return None
        raise IdempotencyKeyInFlight

    async def _create(
        self,
        principal: Principal,
        workflow: Workflow,
        params: dict[str, Any],
        metadata: dict[str, Any],
        webhook: Any = None,
        reservation: KeyReservation | None = None,
    ) -> Job:
        target = await self._webhook(webhook)
        if target is None and principal.webhook_url and self.webhook_urls is not None:
            # The key's default, checked when the key was made; every delivery is
            # checked again by the guarded client, so a changed DNS answer cannot move it.
            target = WebhookTarget(url=principal.webhook_url)
        params = await self._fetch_image_urls(principal, workflow, params)
        valid = validate_params(workflow, params, rng=self.rng)
        inputs = []
        missing = []
        for name, upload_id, bindings in image_bindings(workflow, valid):
            upload = await self.uploads.resolve(principal.id, upload_id)
            if upload is None:
                missing.append(
                    {
                        "path": f"/{name}",
                        "message": f"no completed upload {upload_id!r}",
                        "keyword": "x-kind",
                    }
                )
                continue
            inputs.append(
                InputFile(
                    key=upload.key,
                    filename=upload.filename,
                    bindings=tuple((b.node_id, b.input) for b in bindings),
                )
            )
        if missing:
            raise InvalidParams(details=missing)

        job_id = new_id()
        now = self.clock.now()
        graph = patch_graph(workflow, valid)
        needed = models_needed(graph)
        request = {
            "workflow": workflow.name,
            "workflow_version": workflow.version,
            "params": valid,
            "metadata": metadata,
            "owner_id": principal.id,
            "accepted_at": now.isoformat(),
        }
        # The patched graph is stored before the row exists, so no agent can lease a job
        # whose prompt is not there yet; an orphan object on a failed insert is harmless.
        prompt = json.dumps(graph).encode()
        await asyncio.gather(
            self.blobs.put_bytes(prompt_key(job_id), prompt, JSON_TYPE),
            self.blobs.put_bytes(request_key(job_id), json.dumps(request).encode(), JSON_TYPE),
        )
        if self.fresh is not None:
            self.fresh.keep(job_id, prompt)
        job = await self._queue(
            NewJob(
                id=job_id,
                owner_id=principal.id,
                workflow=workflow.name,
                workflow_version=workflow.version,
                pool=workflow.pool,
                params=valid,
                metadata=metadata,
                inputs=tuple(inputs),
                priority=5,
                max_attempts=workflow.max_attempts,
                timeout_s=workflow.timeout_s,
                retry_on_timeout=workflow.retry_on_timeout,
                expires_at=now + timedelta(seconds=workflow.queue_ttl_s),
                webhook=target.to_dict() if target else None,
                models=needed,
            ),
            now=now,
            admission=self.quotas.admission(principal, workflow.cost.of(valid)),
            reservation=reservation,
        )
        if self.log_prompts:
            log.info("job %s accepted: %s %s", job.id, workflow.name, json.dumps(valid))
        else:
            log.info("job %s accepted: %s", job.id, workflow.name)
        return job

    async def _queue(
        self,
        job: NewJob,
        *,
        now: datetime,
        admission: Admission | None = None,
        reservation: KeyReservation | None = None,
    ) -> Job:
        """Insert the job and tell its status; an agent waiting here that fits it gets
        it in the same transaction, else its pool hears of it."""
        models = frozenset(job.models)
        handoff = self.waiters.handoff(job.pool, models) if self.waiters else None
        try:
            created, claimed = await self._insert(
                job,
                now=now,
                admission=admission,
                reservation=reservation,
                claim=handoff.claim if handoff else None,
            )
        except BaseException:
            if handoff is not None:
                handoff.hand(None)
            raise
        try:
            # Before the handoff, whose lessee tells the running status (the next seq).
            await self._publish_status(created)
        finally:
            # Committed: whatever happens here, the lease reaches its lessee.
            if handoff is not None:
                handoff.hand(claimed)
        if claimed is None or claimed[0].id != created.id:
            self._queued(created, models)
        return created

    def _queued(self, job: Job, models: frozenset[str]) -> None:
        if self.waiters is not None:
            self.waiters.queued_here(job.pool, models)  # rings the pool's bell
        else:
            self.doorbell.ring(job.pool)

    async def _webhook(self, raw: Any) -> WebhookTarget | None:
        if raw is None:
            return None
        target = WebhookTarget.parse(raw)
        if self.webhook_urls is None:
            raise _field("/webhook", "this gateway sends no webhooks", "x-webhook")
        try:
            await self.webhook_urls.check(target.url)
        except ComfygateError as exc:
            raise _field("/webhook/url", exc.message, "format") from None
        return target

    async def _fetch_image_urls(
        self, principal: Principal, workflow: Workflow, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Image parameters given as https URLs become uploads of the caller's."""
        fetched = dict(params)
        for name, param in workflow.parameters.items():
            value = params.get(name)
            if param.kind != "image" or not isinstance(value, str) or "://" not in value:
                continue
            if self.remote_images is None or not value.startswith("https://"):
                raise _field(f"/{name}", "an image URL must be https", "format")
            try:
                fetched[name] = await self.remote_images.fetch(principal.id, value)
            except ComfygateError as exc:
                raise _field(f"/{name}", exc.message, "x-kind") from None
        return fetched

    async def _insert(
        self,
        job: NewJob,
        *,
        now: datetime,
        admission: Admission | None,
        reservation: KeyReservation | None,
        claim: Claim | None,
    ) -> tuple[Job, Claimed]:
        try:
            if claim is not None:
                return await self.store.create_and_claim(
                    job,
                    claim,
                    now=now,
                    max_queued=self.max_queue_depth,
                    admission=admission,
                    reservation=reservation,
                )
            created = await self.store.create_job(
                job,
                now=now,
                max_queued=self.max_queue_depth,
                admission=admission,
                reservation=reservation,
            )
            return created, None
        except (QueueFull, TooManyActiveJobs, QuotaExceeded, IdempotencyKeyInFlight) as refused:
            if self.fresh is not None:
                self.fresh.take(job.id)
            # Refused inside the insert's transaction, so surely not made: its prompt and
            # request would be litter no sweep finds. (Other errors may come after a commit.)
            for key in (prompt_key(job.id), request_key(job.id)):
                with contextlib.suppress(Exception):
                    await self.blobs.delete(key)
            if not isinstance(refused, QueueFull):
                raise
            raise QueueFull(
                f"the queue of pool {job.pool!r} is full; retry later",
                retry_after_s=await self._retry_after_s(job.pool),
                details=refused.details,
            ) from None

    async def _retry_after_s(self, pool: str) -> int:
        """When a place is likely to free up, from the pool's throughput over the last
        ten minutes; a minute when nothing finished lately."""
        window_s = 600.0
        since = self.clock.now() - timedelta(seconds=window_s)
        finished = await self.store.finished_since(pool=pool, since=since)
        if finished == 0:
            return 60
        return max(1, min(600, math.ceil(window_s / finished)))

    async def get(self, principal: Principal, job_id: str) -> Job:
        return self._seen_by(principal, job_id, await self.store.get_job(job_id))

    async def events_and_job(
        self, principal: Principal, job_id: str, seq: int
    ) -> tuple[list[JobEvent], Job]:
        """A stream's opening: the job's events after ``seq`` and the job read after
        them, in one read."""
        events, job = await self.store.events_and_job(job_id, seq)
        return events, self._seen_by(principal, job_id, job)

    def _seen_by(self, principal: Principal, job_id: str, job: Job | None) -> Job:
        if job is None or not self.visible(principal, job):
            raise NotFound(f"no job {job_id!r}")
        if job.deleted_at is not None:
            raise JobDeleted(f"job {job_id!r} was deleted")
        return job

    async def delete(self, principal: Principal, job_id: str) -> Job:
        """Remove a finished job's inputs and outputs and keep a tombstone; a job that
        still runs must be canceled first (409)."""
        job = await self.get(principal, job_id)
        tombstone = await self.store.delete_job(job_id, now=self.clock.now())
        await remove_job_files(self.store, self.blobs, job)
        return tombstone

    @staticmethod
    def visible(principal: Principal, job: Job) -> bool:
        return job.owner_id == principal.id or principal.can("admin")

    async def cancel(self, principal: Principal, job_id: str) -> Job:
        await self.get(principal, job_id)
        job = await self.store.request_cancel(job_id, now=self.clock.now())
        self.doorbell.ring(cancel_bell(job_id))
        await self._publish_status(job)
        return job

    async def retry(self, principal: Principal, job_id: str) -> Job:
        """A new job, ``retry_of`` the old one, that runs exactly what the old one was
        accepted with: the stored patched graph, request and inputs, the same workflow
        version and owner. ``workflows/`` is not read, so an edited folder changes
        nothing. The old job stays as it is; only a finished job can be retried. A
        retry is queued like any job, so a full pool refuses it (429)."""
        old = await self.get(principal, job_id)
        if not old.terminal:
            raise InvalidTransition(
                f"the job is {old.status.value}; only a finished job can be retried"
            )
        try:
            prompt = await self.blobs.get_bytes(prompt_key(old.id))
            request = json.loads(await self.blobs.get_bytes(request_key(old.id)))
        except FileNotFoundError:
            raise Conflict("the job's stored graph is gone, so it cannot be retried") from None
        job_id = new_id()
        now = self.clock.now()
        # As in submit: the prompt is in storage before any agent can lease the row.
        await self.blobs.put_bytes(prompt_key(job_id), prompt, "application/json")
        request.update(accepted_at=now.isoformat(), retry_of=old.id)
        await self.blobs.put_bytes(request_key(job_id), json.dumps(request).encode(), JSON_TYPE)
        queue_ttl = old.expires_at - old.created_at if old.expires_at else None
        needed = models_needed(json.loads(prompt))
        job = await self._queue(
            NewJob(
                id=job_id,
                owner_id=old.owner_id,
                workflow=old.workflow,
                workflow_version=old.workflow_version,
                pool=old.pool,
                params=old.params,
                metadata=old.metadata,
                inputs=old.inputs,
                priority=old.priority,
                max_attempts=old.max_attempts,
                timeout_s=old.timeout_s,
                retry_on_timeout=old.retry_on_timeout,
                expires_at=now + queue_ttl if queue_ttl is not None else None,
                retry_of=old.id,
                webhook=old.webhook,
                models=needed,
            ),
            now=now,
            admission=self._retry_admission(principal, old),
        )
        return job

    def _retry_admission(self, principal: Principal, old: Job) -> Admission | None:
        """A retry by its owner meets the owner's limits and costs what the workflow
        charges today; an admin's retry is the operator's and is not charged."""
        if principal.id != old.owner_id:
            return None
        workflow = self.workflows.get(old.workflow)
        cost = workflow.cost.of(old.params) if workflow is not None else 0.0
        return self.quotas.admission(principal, cost)

    async def expire_due(self) -> list[Job]:
        expired = await self.store.expire_queued(now=self.clock.now())
        for job in expired:
            await self._publish_status(job)
        return expired

    async def _publish_status(self, job: Job) -> None:
        await publish_status(self.events, job)
