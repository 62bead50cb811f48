"""The gateway side of the worker protocol: lease, heartbeat, progress, complete, fail.

Every call but ``lease`` carries the lease token; the store fences each write on it.
Agents reach this only through a transport (in-process now, HTTP for remote agents).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from comfygate.clock import Clock
from comfygate.errors import LeaseLost
from comfygate.ids import new_prompt_id
from comfygate.jobs.announce import publish_status, write_error, write_manifest
from comfygate.jobs.backoff import retry_delay_s
from comfygate.jobs.doorbell import Doorbell
from comfygate.jobs.fresh_prompts import FreshPrompts
from comfygate.jobs.handoff import Claimed, Handoff
from comfygate.jobs.keys import (
    cancel_bell,
    outputs_prefix,
    preview_key,
    prompt_key,
)
from comfygate.jobs.model import (
    Attempt,
    Claim,
    HeartbeatReply,
    Job,
    JobFailure,
    JobStatus,
    Lease,
    Lessee,
    LiveEvent,
    OutputFile,
    Progress,
    QueueHead,
)
from comfygate.jobs.ports import Blobs, EventSink, JobStore

log = logging.getLogger(__name__)

PREVIEW_TTL_S = 300
#: a backend counts as part of its pool this long after its agent last asked for work
LESSEE_SEEN_S = 60.0
#: how often a running job's progress snapshot is written to its row
PROGRESS_SAVE_S = 1.0
#: waiters of one pool on one gateway that check for a job of their own and claim at once
CLAIMERS_PER_POOL = 4
#: tickets of jobs queued here kept per pool at most (each for up to a poll interval)
QUEUED_HERE_MAX = 64
#: a job queued here that a waiter here fits rings the other gateways only if no claim
#: here took a job this long after: their waiters would only race it
ECHO_AFTER_S = 0.1


@dataclass(frozen=True)
class LeaseTimes:
    ttl_s: float = 30.0
    heartbeat_s: float = 10.0
    #: a waiting lease looks at the queue this often without a ring
    poll_s: float = 1.0


async def _any_rung(
    bells: list[asyncio.Event], timeout_s: float, handed: asyncio.Future[Claimed]
) -> None:
    """Until a bell rings, a submit hands the waiter a job, or the time is up."""
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(bell.wait()) for bell in bells]
    either: list[asyncio.Future[Any]] = [*waits, handed]
    try:
        await asyncio.wait(either, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


@dataclass(eq=False)
class _Waiter:
    """A lease call waiting here for a ring."""

    lessee: Lessee
    request_id: str | None
    wanted: Callable[[], bool]
    #: settled by a submit that took this waiter (``handoff``) with its claim's outcome
    handed: asyncio.Future[Claimed]
    #: that submit's handoff, from when it took the waiter
    handoff: Handoff | None = None

    def takes(self, models: frozenset[str]) -> bool:
        """Whether it would take a job that needs ``models`` now: not taken by a submit
        already, not being drained, and its ComfyUI has those files."""
        have = self.lessee.models
        return self.handoff is None and (have is None or models <= have) and self.wanted()


@dataclass(frozen=True)
class _Reporting:
    """What the gate keeps of a lease it handed out or heard progress of."""

    owner_id: str
    #: when its progress snapshot was last stored (monotonic); a lease handed out here
    #: counts from then, so a job shorter than PROGRESS_SAVE_S stores none
    saved_at: float
    #: its cancel bell, armed when the lease was handed out here
    canceled: asyncio.Event | None


def _take_fitting(tickets: list[frozenset[str]], models: frozenset[str] | None) -> bool:
    """Take the first ticket whose model files ``models`` (None: any) has all of."""
    for n, needs in enumerate(tickets):
        if models is None or needs <= models:
            del tickets[n]
            return True
    return False


class _Look:
    """One look at a pool's queue, shared by the waiters that asked during it. Each job
    it saw that avoids no backend is a ticket for the first waiter whose ComfyUI has
    its model files: ticket holders claim at once; the rest check the database only
    when the look may have missed a job for them."""

    def __init__(self, head: QueueHead, depth: int) -> None:
        self.head = head
        self._tickets = list(head.needs)
        self._depth = depth

    @classmethod
    async def of(cls, read: Awaitable[QueueHead], depth: int) -> _Look:
        return cls(await read, depth)

    def take_ticket(self, models: frozenset[str] | None) -> bool:
        """Take a job seen that a backend with ``models`` (None: any) may run."""
        return _take_fitting(self._tickets, models)

    def beyond_tickets(self) -> bool:
        """Whether the queue may hold a job for a waiter without a ticket: the look saw
        a job that avoids some backend (for a while), or stopped at its depth."""
        return self.head.claimable > len(self.head.needs) or self.head.claimable >= self._depth


class WorkerGate:
    def __init__(
        self,
        *,
        store: JobStore,
        blobs: Blobs,
        events: EventSink,
        doorbell: Doorbell,
        clock: Clock,
        lease_times: LeaseTimes,
        rng: random.Random | None = None,
        log_prompts: bool = False,
        fresh: FreshPrompts | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        #: graphs accepted here, not yet leased (shared with the JobService)
        self.fresh = fresh if fresh is not None else FreshPrompts(max_bytes=0)
        self.events = events
        self.doorbell = doorbell
        self.clock = clock
        self.times = lease_times
        #: a failure's message may echo the parameters (ComfyUI quotes bad values)
        self.log_prompts = log_prompts
        self.rng = rng or random.Random()
        #: lease token → its owner, when its progress was last stored, its cancel bell
        self._reporting: dict[str, _Reporting] = {}
        #: backend → what its agent last said when asking for work, and when (monotonic)
        self._lessees: dict[str, tuple[Lessee, float]] = {}
        #: backend → how many lease calls it made: which of its pools goes first
        self._turns: dict[str, int] = {}
        #: pool → (its bell armed before, the look at its queue that idle waiters
        #: here share while it runs)
        self._looking: dict[str, tuple[asyncio.Event, asyncio.Future[_Look]]] = {}
        #: pool → (its bell armed before a look found no ready job, when, that look):
        #: the answer holds for every waiter until that bell rings or the poll interval
        #: passes
        self._none_ready: dict[str, tuple[asyncio.Event, float, _Look]] = {}
        #: pool → the waiters here that may check and claim at the same time
        self._claiming: dict[str, asyncio.Semaphore] = {}
        #: pool → (when, the model files of each job) queued through this gateway lately:
        #: a ticket each, so the job's ring is not followed by a read
        self._queued_here: dict[str, tuple[float, list[frozenset[str]]]] = {}
        #: pool → claims under such a ticket in flight here
        self._claiming_queued: dict[str, int] = {}
        #: pool → the waiters here waiting for a ring, first come first
        self._waiting: dict[str, list[_Waiter]] = {}
        #: pool → the rings of jobs queued here not yet carried to the other gateways
        self._echoes: dict[str, list[asyncio.TimerHandle]] = {}

    def queued_here(self, pool: str, models: frozenset[str]) -> None:
        """A job this gateway just queued in ``pool``, naming ``models``, and its ring.

        The first waiter here whose ComfyUI has those files claims it at once: on an
        idle pool that is the path of every job, and the look's read would stand
        between the submit and the claim. When such a waiter is waiting now, the other
        gateways hear the ring only if no claim here took a job within ECHO_AFTER_S:
        otherwise every gateway would look and race it."""
        now = self.clock.monotonic()
        since, tickets = self._queued_here.get(pool, (now, []))
        if now - since >= self.times.poll_s:  # no waiter here took those: looks will
            since, tickets = now, []
        if len(tickets) < QUEUED_HERE_MAX:
            tickets.append(models)
        self._queued_here[pool] = (since, tickets)
        waiting = self._waiting.get(pool, [])
        if not any(w.takes(models) for w in waiting):
            self.doorbell.ring(pool)
            return
        self.doorbell.ring_here(pool)
        echoes = self._echoes.setdefault(pool, [])
        echoes.append(
            asyncio.get_running_loop().call_later(ECHO_AFTER_S, self._echo_now, pool, echoes)
        )

    def handoff(self, pool: str, models: frozenset[str]) -> Handoff | None:
        """The first waiter here whose ComfyUI has ``models``, taken out of the waiting
        for a submit that claims for it in the job's own transaction (an idle pool's
        every job takes this path); None when no such waiter waits."""
        for waiter in self._waiting.get(pool, []):
            if waiter.takes(models):
                lessee = waiter.lessee
                waiter.handoff = Handoff(
                    claim=Claim(
                        pool=pool,
                        agent_id=lessee.agent_id,
                        backend=lessee.backend,
                        prompt_id=new_prompt_id(),
                        lease_token=secrets.token_urlsafe(24),
                        lease_ttl_s=self.times.ttl_s,
                        avoid=self._avoid(pool, lessee),
                        request_id=waiter.request_id,
                        models=lessee.models,
                    ),
                    outcome=waiter.handed,
                )
                return waiter.handoff
        return None

    def _avoid(self, pool: str, lessee: Lessee) -> str | None:
        """A retried job waits a while for another backend than the one it failed on,
        but only when the pool has another backend to offer."""
        return lessee.backend if self._others_in(pool, lessee.backend) else None

    def _echo_now(self, pool: str, echoes: list[asyncio.TimerHandle]) -> None:
        echoes.pop(0)
        self.doorbell.echo(pool)

    def _absorbed_echo(self, pool: str) -> None:
        """A claim here took a job queued here: one ring the others need not hear."""
        echoes = self._echoes.get(pool)
        if echoes:
            echoes.pop(0).cancel()

    def _take_queued_here(self, pool: str, models: frozenset[str] | None) -> bool:
        since, tickets = self._queued_here.get(pool, (0.0, []))
        if self.clock.monotonic() - since >= self.times.poll_s:
            self._queued_here.pop(pool, None)
            return False
        return _take_fitting(tickets, models)

    async def lease(
        self,
        lessee: Lessee,
        *,
        wait_s: float,
        wanted: Callable[[], bool] = lambda: True,
        request_id: str | None = None,
        retry: bool = False,
    ) -> Lease | None:
        """The next job of one of ``lessee.pools`` that its backend has the models for,
        waiting up to ``wait_s`` for one to arrive; None at once when ``wanted()`` turns
        false (the agent is being drained).

        With ``request_id`` the lease is recorded, and a call with the same id gets it
        back, whichever gateway took it; a ``retry`` also watches for the lease an
        earlier call still waiting elsewhere takes. None when that lease is gone."""
        self._lessees[lessee.backend] = (lessee, self.clock.monotonic())
        try:
            return await self._lease(lessee, wait_s, wanted, request_id, retry)
        except LeaseLost:
            return None

    async def _lease(
        self,
        lessee: Lessee,
        wait_s: float,
        wanted: Callable[[], bool],
        request_id: str | None,
        retry: bool,
    ) -> Lease | None:
        deadline = self.clock.monotonic() + wait_s
        #: whether a lease for this request id may be taken elsewhere meanwhile
        watch = retry
        while True:
            if not wanted():
                return None
            if watch and request_id is not None:
                earlier = await self.store.requested_lease(
                    agent_id=lessee.agent_id, request_id=request_id
                )
                if earlier is not None:
                    return self._to_lease(*earlier)
            # Armed before the checks, so a ring between check and wait is not missed.
            bells = [self.doorbell.arm(pool) for pool in lessee.pools]
            for pool in self._pools_in_turn(lessee):
                avoid = self._avoid(pool, lessee)
                queued_here = self._take_queued_here(pool, lessee.models)
                if not queued_here:
                    if self._claiming_queued.get(pool):
                        # A waiter here claims a job just queued: a look now would still
                        # see it and send more claimers. That claim rings when done.
                        continue
                    look = await self._look(pool)
                    if not look.head.claimable:
                        continue
                # After a ring, a few waiters at a time go on: once the job is taken,
                # the rest find the shared "none ready" instead of querying each.
                claimers = self._claimers(pool)
                waited = claimers.locked()
                async with claimers:
                    if not queued_here and not await self._may_claim(
                        pool, lessee, avoid, look, waited
                    ):
                        continue
                    prompt_id = new_prompt_id()
                    if queued_here:
                        self._claiming_queued[pool] = self._claiming_queued.get(pool, 0) + 1
                    try:
                        claimed = await self.store.claim(
                            pool=pool,
                            agent_id=lessee.agent_id,
                            backend=lessee.backend,
                            prompt_id=prompt_id,
                            lease_token=secrets.token_urlsafe(24),
                            lease_ttl_s=self.times.ttl_s,
                            now=self.clock.now(),
                            avoid=avoid,
                            request_id=request_id,
                            models=lessee.models,
                        )
                    finally:
                        if queued_here:
                            self._claiming_queued[pool] -= 1
                            # The waiters that held back look now, at the committed queue.
                            self.doorbell.ring_here(pool)
                    if queued_here and claimed is not None:
                        self._absorbed_echo(pool)
                    if claimed is None and request_id is not None:
                        # Lost a race, maybe to a retry of this very call on another gateway
                        # (whose claim may not have committed yet: watch from now on).
                        watch = True
                        claimed = await self.store.requested_lease(
                            agent_id=lessee.agent_id, request_id=request_id
                        )
                    if claimed is not None:
                        return await self._leased(*claimed, prompt_id=prompt_id)
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return None
            # Polls too: a retry's not_before passing rings no bell, and a ring can be
            # missed between a lost claim and the wait.
            waiter = _Waiter(lessee, request_id, wanted, asyncio.get_running_loop().create_future())
            for pool in lessee.pools:
                self._waiting.setdefault(pool, []).append(waiter)
            try:
                await _any_rung(bells, min(remaining, self.times.poll_s), waiter.handed)
            finally:
                for pool in lessee.pools:
                    self._waiting[pool].remove(waiter)
            if waiter.handoff is not None:
                # A submit claims for this waiter: its transaction decides, however long.
                claimed = await waiter.handed
                if claimed is not None:
                    return await self._leased(*claimed, prompt_id=waiter.handoff.claim.prompt_id)
                if request_id is not None:
                    watch = True  # that claim may have met a retry of this call elsewhere

    async def _leased(self, job: Job, attempt: Attempt, *, prompt_id: str) -> Lease:
        """The lease of a claimed job; a claim that made the attempt ``prompt_id`` (not
        one recorded before for the same request) tells the running status."""
        lease = self._to_lease(job, attempt, graph=await self._graph(job.id))
        if attempt.prompt_id == prompt_id:
            await self._publish_status(job)
            self._reporting[lease.lease_token] = _Reporting(
                owner_id=job.owner_id,
                saved_at=self.clock.monotonic(),
                canceled=self.doorbell.arm(cancel_bell(job.id)),
            )
        return lease

    async def _may_claim(
        self, pool: str, lessee: Lessee, avoid: str | None, look: _Look, waited: bool
    ) -> bool:
        """Whether a job may be there for this waiter, after ``look`` found one."""
        if waited:  # others went first: the jobs seen may be gone
            look = await self._look(pool)
            if not look.head.claimable:
                return False
        if look.take_ticket(lessee.models):
            return True
        # Every job the look saw that this backend may run has a ticket holder claiming
        # it: wait for the next ring, do not race them.
        if not look.beyond_tickets():
            return False
        # A read first, so that idle waiters do not take the write lock for nothing.
        return await self.store.has_claimable(
            pool=pool, now=self.clock.now(), avoid=avoid, models=lessee.models
        )

    def _claimers(self, pool: str) -> asyncio.Semaphore:
        return self._claiming.setdefault(pool, asyncio.Semaphore(CLAIMERS_PER_POOL))

    async def _look(self, pool: str) -> _Look:
        """What the pool's queue holds: one look, shared by this gateway's waiters,
        instead of one each per poll."""
        none = self._none_ready.get(pool)
        if none is not None:
            bell, at, empty = none
            if not bell.is_set() and self.clock.monotonic() - at < self.times.poll_s:
                return empty
            del self._none_ready[pool]
        looking = self._looking.get(pool)
        # A look that started before the latest ring may have missed its job.
        if looking is None or looking[0].is_set():
            # Armed before the read: a job queued meanwhile rings it, voiding the answer.
            read = self.store.queue_head(pool=pool, now=self.clock.now(), depth=CLAIMERS_PER_POOL)
            looking = (
                self.doorbell.arm(pool),
                asyncio.ensure_future(_Look.of(read, CLAIMERS_PER_POOL)),
            )
            self._looking[pool] = looking
        bell, pending = looking
        at = self.clock.monotonic()
        try:
            # Shielded: a waiter that gives up must not cancel the look others share.
            found = await asyncio.shield(pending)
        finally:
            if self._looking.get(pool) is looking and pending.done():
                del self._looking[pool]
        if not found.head.claimable:
            self._none_ready[pool] = (bell, at, found)
        return found

    def _pools_in_turn(self, lessee: Lessee) -> list[str]:
        """The lessee's pools, starting one further each call, so that no pool of a
        backend that serves several starves the others."""
        pools = list(lessee.pools)
        turn = self._turns.get(lessee.backend, 0)
        self._turns[lessee.backend] = turn + 1
        start = turn % len(pools)
        return pools[start:] + pools[:start]

    async def adopt(self, *, agent_id: str, backend: str) -> list[Lease]:
        """The jobs this agent ran on this backend before the gateway restarted: their
        prompts may still run, or be done, so they are followed, not run again."""
        adopted = await self.store.adopt(
            agent_id=agent_id,
            backend=backend,
            lease_ttl_s=self.times.ttl_s,
            new_token=lambda: secrets.token_urlsafe(24),
            now=self.clock.now(),
        )
        return [self._to_lease(job, attempt) for job, attempt in adopted]

    async def _graph(self, job_id: str) -> dict[str, Any] | None:
        """The job's graph for its lease: saves the agent a read. None when storage
        fails now; the job is leased already, and the agent reads (and retries) itself."""
        data = self.fresh.take(job_id)
        if data is None:
            try:
                data = await self.blobs.get_bytes(prompt_key(job_id))
            except Exception:
                log.warning("job %s: its graph could not be read for its lease", job_id)
                return None
        graph: dict[str, Any] = json.loads(data)
        return graph

    def _to_lease(self, job: Job, attempt: Attempt, graph: dict[str, Any] | None = None) -> Lease:
        assert job.lease_token is not None
        return Lease(
            job_id=job.id,
            lease_token=job.lease_token,
            attempt=attempt.attempt,
            prompt_id=attempt.prompt_id,
            prompt_key=prompt_key(job.id),
            inputs=job.inputs,
            outputs_prefix=outputs_prefix(job.id, attempt.attempt),
            timeout_s=job.timeout_s,
            retry_on_timeout=job.retry_on_timeout,
            lease_ttl_s=self.times.ttl_s,
            heartbeat_s=self.times.heartbeat_s,
            graph=graph,
        )

    def _others_in(self, pool: str, backend: str) -> bool:
        """Whether another backend of the pool asked for work lately (an agent waits
        in ``lease`` at most LESSEE_SEEN_S at a time)."""
        return bool(self.backends_seen(pool) - {backend})

    def backends_seen(self, pool: str) -> set[str]:
        """The backends whose agents asked ``pool`` for work lately."""
        return {x.backend for x in self.lessees() if pool in x.pools}

    def waiting(self, pool: str) -> list[Lessee]:
        """The agents whose lease calls wait here for work of ``pool`` right now."""
        return [waiter.lessee for waiter in self._waiting.get(pool, [])]

    def lessees(self) -> list[Lessee]:
        """What the agents that asked for work lately reported, by backend URL: pools,
        free slots, model files (the admin backends view)."""
        now = self.clock.monotonic()
        return [
            lessee
            for _, (lessee, seen) in sorted(self._lessees.items())
            if now - seen < LESSEE_SEEN_S
        ]

    async def heartbeat(self, lease: Lease) -> HeartbeatReply:
        job = await self.store.heartbeat(
            lease.job_id, lease.lease_token, lease_ttl_s=self.times.ttl_s, now=self.clock.now()
        )
        return HeartbeatReply(cancel=job.status is JobStatus.CANCELING)

    async def wait_cancel(self, lease: Lease, timeout_s: float) -> bool:
        await self.doorbell.wait(cancel_bell(lease.job_id), timeout_s)
        job = await self.store.get_job(lease.job_id)
        return job is not None and job.status is JobStatus.CANCELING

    async def progress(self, lease: Lease, progress: Progress) -> HeartbeatReply:
        """Publish at once; store the snapshot (fenced) every PROGRESS_SAVE_S of running,
        so a fast job does not pay a write per tick while any gateway can still serve it
        (a lease taken through another gateway stores its first tick here at once). The
        reply carries a cancel at the next tick after it was asked for."""
        now = self.clock.monotonic()
        seen = self._reporting.get(lease.lease_token)
        cancel = False
        # A cancel rings the job's bell on every gateway; so does a "look again" after
        # lost notices, so a ring is confirmed by the row the save returns.
        rung = seen is not None and seen.canceled is not None and seen.canceled.is_set()
        if seen is None or rung or now - seen.saved_at >= PROGRESS_SAVE_S:
            job = await self.store.save_progress(lease.job_id, lease.lease_token, progress)
            cancel = job.status is JobStatus.CANCELING
            bell = seen.canceled if seen is not None else None
            if rung and not cancel:
                bell = self.doorbell.arm(cancel_bell(job.id))
            seen = _Reporting(owner_id=job.owner_id, saved_at=now, canceled=bell)
            self._reporting[lease.lease_token] = seen
        await self.events.publish(
            LiveEvent(
                job_id=lease.job_id,
                owner_id=seen.owner_id,
                type="progress",
                data=progress.to_dict(),
            )
        )
        return HeartbeatReply(cancel=cancel)

    def _forget_lease(self, lease: Lease) -> None:
        self._reporting.pop(lease.lease_token, None)
        self.doorbell.forget(cancel_bell(lease.job_id))

    async def preview(
        self, lease: Lease, *, node_id: str | None, content_type: str, data: bytes
    ) -> None:
        # Fenced like progress: a lease this gate handed out or saved lately stands;
        # another is checked against the row.
        seen = self._reporting.get(lease.lease_token)
        if seen is not None and self.clock.monotonic() - seen.saved_at < PROGRESS_SAVE_S:
            owner_id = seen.owner_id
        else:
            job = await self.store.get_job(lease.job_id)
            if job is None or job.lease_token != lease.lease_token:
                return
            owner_id = job.owner_id
        ext = "png" if content_type == "image/png" else "jpg"
        key = preview_key(lease.job_id, ext)
        await self.blobs.put_bytes(key, data, content_type)
        url, expires_at = await self.blobs.signed_url(key, PREVIEW_TTL_S)
        await self.events.publish(
            LiveEvent(
                job_id=lease.job_id,
                owner_id=owner_id,
                type="preview",
                data={"url": url, "node_id": node_id, "expires_at": expires_at.isoformat()},
            )
        )

    async def complete(
        self, lease: Lease, outputs: Sequence[OutputFile], progress: Progress | None = None
    ) -> Job:
        job = await self.store.complete(
            lease.job_id, lease.lease_token, outputs, now=self.clock.now(), progress=progress
        )
        # Written only after the fenced commit: clients never see an uncommitted output.
        await write_manifest(self.blobs, job)
        first_output_seq = job.last_seq - len(job.outputs)
        for i, output in enumerate(job.outputs):
            await self.events.publish(
                LiveEvent(
                    job_id=job.id,
                    owner_id=job.owner_id,
                    type="output",
                    data=output.to_dict(),
                    seq=first_output_seq + i,
                )
            )
        self._forget_lease(lease)
        await self._publish_status(job)
        return job

    async def fail(self, lease: Lease, failure: JobFailure, *, retryable: bool) -> Job:
        current = await self.store.get_job(lease.job_id)
        retry_at = None
        if retryable and current is not None and current.attempts < current.max_attempts:
            retry_at = self.clock.now() + timedelta(
                seconds=retry_delay_s(current.attempts, self.rng)
            )
        self._forget_lease(lease)
        job = await self.store.fail(
            lease.job_id, lease.lease_token, failure, retry_at=retry_at, now=self.clock.now()
        )
        said = f": {failure.message}" if self.log_prompts else ""
        log.info(
            "job %s attempt %d failed (%s%s), now %s",
            job.id,
            lease.attempt,
            failure.code,
            said,
            job.status.value,
        )
        if job.status is JobStatus.FAILED:
            await write_error(self.blobs, job.id, failure, lease.attempt)
        elif job.status is JobStatus.QUEUED:
            self.doorbell.ring(job.pool)
        await self._publish_status(job)
        return job

    async def canceled(self, lease: Lease) -> Job:
        self._forget_lease(lease)
        job = await self.store.finish_cancel(lease.job_id, lease.lease_token, now=self.clock.now())
        await self._publish_status(job)
        return job

    async def _publish_status(self, job: Job) -> None:
        await publish_status(self.events, job)
