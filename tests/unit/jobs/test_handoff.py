"""A job queued while an agent here waits for work is handed to it in the job's own
transaction; otherwise its pool hears of it. Driven through JobService.retry, which
queues like a submit without a workflow folder."""

from __future__ import annotations

import asyncio

import pytest

from comfygate.errors import QueueFull
from comfygate.jobs.handoff import Handoff
from comfygate.jobs.model import Claim, JobStatus, LiveEvent
from comfygate.principal import ADMIN
from tests.unit.jobs.parts import NEEDS_A_MODEL, Parts


class FakeWaiters:
    """``waiting`` agents, each taken by at most one handoff; their backends have
    ``models`` (None: every model)."""

    def __init__(self, waiting: int, models: frozenset[str] | None = None) -> None:
        self.waiting = waiting
        self.models = models
        self.handoffs: list[Handoff] = []
        #: (pool, models) of each job that stayed queued
        self.queued: list[tuple[str, frozenset[str]]] = []

    def handoff(self, pool: str, models: frozenset[str]) -> Handoff | None:
        if not self.waiting:
            return None
        self.waiting -= 1
        claim = Claim(
            pool=pool,
            agent_id=f"a{len(self.handoffs)}",
            backend="http://gpu",
            prompt_id="p1",
            lease_token="t1",
            lease_ttl_s=30.0,
            models=self.models,
        )
        handoff = Handoff(claim=claim, outcome=asyncio.get_running_loop().create_future())
        self.handoffs.append(handoff)
        return handoff

    def queued_here(self, pool: str, models: frozenset[str]) -> None:
        self.queued.append((pool, models))


async def test_a_waiting_agent_gets_the_job_after_its_queued_status_is_told(
    parts: Parts,
) -> None:
    waiters = FakeWaiters(1)
    service = parts.service(waiters=waiters)
    settled_when_told: list[bool] = []

    def watch(event: LiveEvent) -> None:
        settled_when_told.append(waiters.handoffs[0].outcome.done())

    parts.events.before = watch
    old_id = await parts.finished_job()
    job = await service.retry(ADMIN, old_id)
    [handoff] = waiters.handoffs
    claimed = handoff.outcome.result()
    assert claimed is not None
    taken, attempt = claimed
    assert taken.id == job.id and taken.status is JobStatus.RUNNING
    assert attempt.prompt_id == handoff.claim.prompt_id
    # The queued status (seq 1) is out before the agent can tell its running status.
    assert settled_when_told == [False]
    assert [e.data["status"] for e in parts.events.published] == ["queued"]
    # Taken here: no ring for it.
    assert waiters.queued == []
    assert (await parts.store.get_job(job.id)) == taken


async def test_a_claim_that_takes_an_older_job_leaves_the_new_one_to_its_pool(
    parts: Parts,
) -> None:
    older = await parts.finished_job(JobStatus.QUEUED)
    waiters = FakeWaiters(1)
    job = await parts.service(waiters=waiters).retry(ADMIN, await parts.finished_job())
    claimed = waiters.handoffs[0].outcome.result()
    assert claimed is not None and claimed[0].id == older
    assert (await parts.store.get_job(job.id)) == job and job.status is JobStatus.QUEUED
    assert waiters.queued == [(job.pool, frozenset())]


@pytest.mark.parametrize("waiting", [0, 1], ids=["none-waits", "claim-finds-nothing"])
async def test_a_job_no_waiter_takes_is_rung(parts: Parts, waiting: int) -> None:
    # The waiter's backend lacks the model the job needs.
    waiters = FakeWaiters(waiting, models=frozenset())
    old_id = await parts.finished_job(graph=NEEDS_A_MODEL)
    job = await parts.service(waiters=waiters).retry(ADMIN, old_id)
    assert [h.outcome.result() for h in waiters.handoffs] == [None] * waiting
    assert waiters.queued == [(job.pool, frozenset({"sd15.safetensors"}))]


async def test_a_refused_job_hands_its_waiter_nothing(parts: Parts) -> None:
    await parts.finished_job(JobStatus.QUEUED)  # fills the pool's queue
    old_id = await parts.finished_job()
    waiters = FakeWaiters(1)
    with pytest.raises(QueueFull):
        await parts.service(waiters=waiters, max_queue_depth=1).retry(ADMIN, old_id)
    assert waiters.handoffs[0].outcome.result() is None
    assert waiters.queued == []


async def test_a_committed_claim_reaches_its_waiter_even_if_telling_the_status_fails(
    parts: Parts,
) -> None:
    class Down(Exception):
        pass

    def fails(event: LiveEvent) -> None:
        raise Down

    parts.events.before = fails
    waiters = FakeWaiters(1)
    with pytest.raises(Down):
        await parts.service(waiters=waiters).retry(ADMIN, await parts.finished_job())
    claimed = waiters.handoffs[0].outcome.result()
    assert claimed is not None and claimed[0].status is JobStatus.RUNNING
