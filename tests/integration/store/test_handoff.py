"""A waiting agent is handed a job in the transaction that queues it: no look at the
queue and no claim of its own, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from comfygate.clock import FakeClock
from comfygate.jobs.doorbell import Doorbell
from comfygate.jobs.model import JobStatus
from comfygate.store import SqlJobStore
from tests.integration.store.helpers import (
    claim_path_calls,
    gate_over,
    lessee,
    new_job,
    waiting_lease,
)
from tests.wait import until


async def test_a_waiter_is_handed_the_job_without_a_look_or_claim_of_its_own(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = gate_over(store, clock, tmp_path)
    task = await waiting_lease(gate, lessee(1))
    calls = claim_path_calls(store, monkeypatch)
    handoff = gate.handoff("default", frozenset())
    assert handoff is not None and handoff.claim.agent_id == "w1"
    job, claimed = await store.create_and_claim(new_job(), handoff.claim, now=clock.now())
    assert claimed is not None
    taken, attempt = claimed
    assert taken.id == job.id and taken.status is JobStatus.RUNNING
    assert attempt.started_at == job.created_at
    handoff.hand(claimed)
    lease = await asyncio.wait_for(task, 5)
    assert lease is not None and lease.job_id == job.id
    assert lease.prompt_id == handoff.claim.prompt_id
    assert calls == []
    # One transaction, two events in order: queued, then running.
    timeline = await store.events_after(job.id, 0)
    assert [(e.seq, e.data["status"]) for e in timeline] == [(1, "queued"), (2, "running")]
    [row] = await store.attempts(job.id)
    assert (row.prompt_id, row.backend) == (lease.prompt_id, "http://gpu-1")


async def test_each_waiter_is_taken_once_and_only_for_a_job_it_fits(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    gate = gate_over(store, clock, tmp_path)
    box = await waiting_lease(gate, lessee(1, frozenset({"sdxl.safetensors"})))
    bare = await waiting_lease(gate, lessee(2, frozenset()))
    assert gate.handoff("default", frozenset({"flux.safetensors"})) is None
    first = gate.handoff("default", frozenset({"sdxl.safetensors"}))
    assert first is not None and first.claim.agent_id == "w1"
    assert first.claim.models == frozenset({"sdxl.safetensors"})
    assert gate.handoff("default", frozenset({"sdxl.safetensors"})) is None
    second = gate.handoff("default", frozenset())
    assert second is not None and second.claim.agent_id == "w2"
    assert gate.handoff("default", frozenset()) is None
    assert gate.handoff("other-pool", frozenset()) is None
    # Handed nothing (the submit failed), both wait on and look again after a ring.
    first.hand(None)
    second.hand(None)
    job = await store.create_job(new_job(), now=clock.now())
    gate.doorbell.ring("default")
    done, pending = await asyncio.wait([box, bare], return_when=asyncio.FIRST_COMPLETED)
    [lease] = [t.result() for t in done]
    assert lease is not None and lease.job_id == job.id
    for task in pending:
        task.cancel()


async def test_a_draining_waiter_is_not_taken_nor_holds_the_ring_back(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    gate = gate_over(store, clock, tmp_path)
    echoed: list[str] = []
    gate.doorbell = Doorbell(echo=echoed.append)
    wanted = True
    task = asyncio.create_task(gate.lease(lessee(1), wait_s=5, wanted=lambda: wanted))
    await until(lambda: gate.waiting("default"), "the lease call to wait")
    wanted = False
    assert gate.handoff("default", frozenset()) is None
    # The job stays queued: the other gateways hear of it at once, not after a wait
    # for a claim here that will not come.
    gate.queued_here("default", frozenset())
    assert echoed == ["default"]
    task.cancel()


async def test_the_handed_claim_takes_what_the_queue_puts_first(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    gate = gate_over(store, clock, tmp_path)
    task = await waiting_lease(gate, lessee(1))
    # Queued meanwhile on another gateway, whose ring has not arrived yet.
    urgent = await store.create_job(new_job(priority=9), now=clock.now())
    handoff = gate.handoff("default", frozenset())
    assert handoff is not None
    job, claimed = await store.create_and_claim(new_job(), handoff.claim, now=clock.now())
    handoff.hand(claimed)
    lease = await asyncio.wait_for(task, 5)
    assert lease is not None and lease.job_id == urgent.id
    queued = await store.get_job(job.id)
    assert queued is not None and queued.status is JobStatus.QUEUED


async def test_a_handed_lease_is_recorded_under_the_waiters_request_id(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    gate = gate_over(store, clock, tmp_path)
    who = lessee(1)
    task = await waiting_lease(gate, who, request_id="r-1")
    handoff = gate.handoff("default", frozenset())
    assert handoff is not None and handoff.claim.request_id == "r-1"
    job, claimed = await store.create_and_claim(new_job(), handoff.claim, now=clock.now())
    handoff.hand(claimed)
    lease = await asyncio.wait_for(task, 5)
    assert lease is not None and lease.job_id == job.id
    # A retry of that lease call (its answer lost on the way) gets the same lease back.
    again = await gate.lease(who, wait_s=0, request_id="r-1", retry=True)
    assert again is not None and (again.job_id, again.lease_token) == (job.id, lease.lease_token)
