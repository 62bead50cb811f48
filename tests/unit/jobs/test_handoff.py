"""A job queued while an agent here waits for work is handed to it in the job's own
transaction; otherwise its pool hears of it. Driven through JobService.retry, which
queues like a submit without a workflow folder."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from comfygate.errors import TooManyActiveJobs
from comfygate.jobs.handoff import Handoff
from comfygate.jobs.model import Claim, JobStatus
from comfygate.jobs.service import JobService
from comfygate.principal import ADMIN
from tests.unit.jobs.fakes import FakeStore, NoUploads
from tests.unit.jobs.test_retry import finished_job


class FakeWaiters:
    """``waiting`` agents, each taken by at most one handoff."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting
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
        )
        handoff = Handoff(claim=claim, outcome=asyncio.get_running_loop().create_future())
        self.handoffs.append(handoff)
        return handoff

    def queued_here(self, pool: str, models: frozenset[str]) -> None:
        self.queued.append((pool, models))


def service_with(parts: dict[str, Any], waiters: FakeWaiters) -> JobService:
    return JobService(uploads=NoUploads(), workflows={}, waiters=waiters, **parts)


async def test_a_waiting_agent_gets_the_job_after_its_queued_status_is_told(
    parts: dict[str, Any],
) -> None:
    waiters = FakeWaiters(1)
    service = service_with(parts, waiters)
    settled_when_told: list[bool] = []
    events = parts["events"]
    publish = events.publish

    async def watched(event: Any) -> None:
        settled_when_told.append(waiters.handoffs[0].outcome.done())
        await publish(event)

    events.publish = watched
    old_id = await finished_job(parts)
    job = await service.retry(ADMIN, old_id)
    [handoff] = waiters.handoffs
    claimed = handoff.outcome.result()
    assert claimed is not None
    taken, attempt = claimed
    assert taken.id == job.id and taken.status is JobStatus.RUNNING
    assert attempt.prompt_id == handoff.claim.prompt_id
    # The queued status (seq 1) is out before the agent can tell its running status.
    assert settled_when_told == [False]
    assert [e.data["status"] for e in events.published] == ["queued"]
    # Taken here: no ring for it.
    assert waiters.queued == []
    assert parts["store"].claims == [handoff.claim]


async def test_a_claim_that_takes_an_older_job_leaves_the_new_one_to_its_pool(
    parts: dict[str, Any],
) -> None:
    store: FakeStore = parts["store"]
    older = store.set_status(await finished_job(parts), JobStatus.QUEUED)
    store.claim_takes = store.set_status(older.id, JobStatus.RUNNING)
    waiters = FakeWaiters(1)
    job = await service_with(parts, waiters).retry(ADMIN, await finished_job(parts))
    claimed = waiters.handoffs[0].outcome.result()
    assert claimed is not None and claimed[0].id == older.id
    assert store.jobs[job.id].status is JobStatus.QUEUED
    assert waiters.queued == [(job.pool, frozenset())]


@pytest.mark.parametrize("waiting", [0, 1], ids=["none-waits", "claim-finds-nothing"])
async def test_a_job_no_waiter_takes_is_rung(parts: dict[str, Any], waiting: int) -> None:
    store: FakeStore = parts["store"]
    store.claim_takes = None
    waiters = FakeWaiters(waiting)
    job = await service_with(parts, waiters).retry(ADMIN, await finished_job(parts))
    assert [h.outcome.result() for h in waiters.handoffs] == [None] * waiting
    assert waiters.queued == [(job.pool, frozenset())]


async def test_a_refused_job_hands_its_waiter_nothing(parts: dict[str, Any]) -> None:
    store: FakeStore = parts["store"]
    old_id = await finished_job(parts)
    store.refusal = TooManyActiveJobs("too many")
    waiters = FakeWaiters(1)
    with pytest.raises(TooManyActiveJobs):
        await service_with(parts, waiters).retry(ADMIN, old_id)
    assert waiters.handoffs[0].outcome.result() is None
    assert waiters.queued == []


async def test_a_committed_claim_reaches_its_waiter_even_if_telling_the_status_fails(
    parts: dict[str, Any],
) -> None:
    class Down(Exception):
        pass

    async def fails(event: Any) -> None:
        raise Down

    parts["events"].publish = fails
    waiters = FakeWaiters(1)
    with pytest.raises(Down):
        await service_with(parts, waiters).retry(ADMIN, await finished_job(parts))
    claimed = waiters.handoffs[0].outcome.result()
    assert claimed is not None and claimed[0].status is JobStatus.RUNNING
