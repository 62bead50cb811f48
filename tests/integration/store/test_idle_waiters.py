"""Idle agents waiting for work share one look at their pool's queue per gateway, so a
gateway with hundreds of them does not send a query each per poll."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from comfygate.clock import FakeClock
from comfygate.jobs.doorbell import Doorbell
from comfygate.jobs.model import JobFailure, Lease, Lessee
from comfygate.jobs.worker_gate import ECHO_AFTER_S, WorkerGate
from comfygate.store import SqlJobStore
from tests.integration.store.helpers import (
    claim_path_calls,
    gate_over,
    lessee,
    new_job,
    waiting_lease,
)

WAITERS = 20


async def one_poll(gate: WorkerGate, lessees: list[Lessee]) -> list[Lease | None]:
    """Every waiter looks once (a lease call that does not wait)."""
    return list(await asyncio.gather(*(gate.lease(x, wait_s=0) for x in lessees)))


async def past_echo_timers() -> None:
    """Until every echo the gate has timed so far is due and has run: the loop runs its
    timers in the order they fall due, so this one, set for the same delay after
    theirs, runs after them."""
    loop = asyncio.get_running_loop()
    passed = loop.create_future()
    loop.call_later(ECHO_AFTER_S, passed.set_result, None)
    await passed


async def test_idle_waiters_share_one_look_until_a_ring_or_the_poll_interval(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    gate = gate_over(store, clock, tmp_path)
    waiters = [lessee(n) for n in range(WAITERS)]
    before = store.db.statements
    assert await one_poll(gate, waiters) == [None] * WAITERS
    assert store.db.statements - before == 1
    # The empty answer holds for the next polls of the same interval …
    before = store.db.statements
    assert await one_poll(gate, waiters) == [None] * WAITERS
    assert store.db.statements == before
    # … until a job is queued (its ring voids it): exactly one waiter gets the job.
    await store.create_job(new_job(), now=clock.now())
    gate.doorbell.ring("default")
    leases = await one_poll(gate, waiters)
    assert sum(lease is not None for lease in leases) == 1
    # A retry's not_before passes without a ring: the next interval looks again.
    assert await one_poll(gate, waiters) == [None] * WAITERS
    clock.advance(gate.times.poll_s)
    before = store.db.statements
    await one_poll(gate, waiters)
    assert store.db.statements - before == 1


async def test_a_ready_job_no_waiter_has_the_models_for_stays_queued(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    gate = gate_over(store, clock, tmp_path)
    job = await store.create_job(new_job(models=("sdxl.safetensors",)), now=clock.now())
    gate.doorbell.ring("default")
    lacking = [lessee(n, frozenset({"sd15.safetensors"})) for n in range(3)]
    assert await one_poll(gate, lacking) == [None] * 3
    having = lessee(9, frozenset({"sdxl.safetensors"}))
    [lease] = await one_poll(gate, [having])
    assert lease is not None and lease.job_id == job.id


async def test_only_a_job_that_avoids_a_backend_costs_a_waiter_its_own_check(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = gate_over(store, clock, tmp_path)
    checks: list[str] = []
    own_check = store.has_claimable

    async def counted(**kw: Any) -> bool:
        checks.append(kw["pool"])
        return await own_check(**kw)

    monkeypatch.setattr(store, "has_claimable", counted)
    box = lessee(1, frozenset({"sdxl.safetensors"}))
    bare = lessee(2, frozenset())
    # A job any backend may take: the shared look is all the waiter reads before it claims.
    plain = await store.create_job(new_job(), now=clock.now())
    gate.doorbell.ring("default")
    [lease] = await one_poll(gate, [box])
    assert lease is not None and lease.job_id == plain.id
    # A job that names a model: the look shows which one, so the waiter that has it
    # claims at once and the one that lacks it neither checks nor claims.
    needy = await store.create_job(new_job(models=("sdxl.safetensors",)), now=clock.now())
    gate.doorbell.ring("default")
    assert await one_poll(gate, [bare]) == [None]
    gate.doorbell.ring("default")
    [lease] = await one_poll(gate, [box])
    assert lease is not None and lease.job_id == needy.id
    assert checks == []
    # A retried job that waits a while for another backend than the one it failed on:
    # the look cannot tell who may take it now, so the waiter checks.
    retried = await store.create_job(new_job(), now=clock.now())
    gate.doorbell.ring("default")
    [first] = await one_poll(gate, [lessee(9)])
    assert first is not None and first.job_id == retried.id
    await gate.fail(first, JobFailure(code="backend_error", message="x"), retryable=True)
    clock.advance(60)  # past its retry delay
    gate.doorbell.ring("default")
    [lease] = await one_poll(gate, [bare])
    assert lease is not None and lease.job_id == retried.id
    assert checks == ["default"]


async def test_waiters_past_the_jobs_seen_check_before_they_claim(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    gate = gate_over(store, clock, tmp_path)
    jobs = [await store.create_job(new_job(), now=clock.now()) for _ in range(2)]
    gate.doorbell.ring("default")
    leases = await one_poll(gate, [lessee(n) for n in range(WAITERS)])
    taken = sorted(lease.job_id for lease in leases if lease is not None)
    assert taken == sorted(job.id for job in jobs)


async def test_a_job_queued_here_is_claimed_without_a_look_by_a_waiter_that_fits(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = gate_over(store, clock, tmp_path)
    bare, box = lessee(1, frozenset()), lessee(2, frozenset({"sdxl.safetensors"}))
    assert await one_poll(gate, [bare, box]) == [None, None]
    calls = claim_path_calls(store, monkeypatch)
    job = await store.create_job(new_job(models=("sdxl.safetensors",)), now=clock.now())
    gate.queued_here("default", frozenset({"sdxl.safetensors"}))
    gate.doorbell.ring("default")
    # The waiter without the model takes no ticket (and looks); the one with it claims
    # at once, without a look of its own.
    assert await one_poll(gate, [bare]) == [None]
    assert calls == ["queue_head"]
    [lease] = await one_poll(gate, [box])
    assert lease is not None and lease.job_id == job.id
    assert calls == ["queue_head", "claim"], calls
    # A ticket no waiter here took lasts a poll interval: then looks take over.
    gate.queued_here("default", frozenset({"flux.safetensors"}))
    clock.advance(gate.times.poll_s)
    gate.doorbell.ring("default")
    # One that fits any job looks rather than claims: the ticket lapsed.
    assert await one_poll(gate, [lessee(3)]) == [None]
    assert calls == ["queue_head", "claim", "queue_head"], calls


@pytest.mark.parametrize("here", [False, True], ids=["queued-elsewhere", "queued-here"])
async def test_one_job_for_many_waiters_costs_at_most_one_look_and_one_claim(
    store: SqlJobStore,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    here: bool,
) -> None:
    gate = gate_over(store, clock, tmp_path)
    waiters = [lessee(n) for n in range(WAITERS)]
    assert await one_poll(gate, waiters) == [None] * WAITERS
    calls = claim_path_calls(store, monkeypatch)
    job = await store.create_job(new_job(), now=clock.now())
    if here:
        gate.queued_here("default", frozenset())
    gate.doorbell.ring("default")
    leases = await one_poll(gate, waiters)
    assert [lease.job_id for lease in leases if lease is not None] == [job.id]
    # Queued elsewhere: the look saw one job any backend may take, its ticket holder
    # claims it, and the other waiters neither query nor race it for the write lock.
    # Queued here: its first waiter claims it without a look, and the others hold back.
    assert calls == (["claim"] if here else ["queue_head", "claim"]), calls


async def test_a_job_queued_here_rings_the_other_gateways_only_if_no_waiter_here_takes_it(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    echoed: list[str] = []

    def echoing() -> WorkerGate:
        gate = gate_over(store, clock, tmp_path)
        gate.doorbell = Doorbell(echo=echoed.append)
        return gate

    # No waiter here: the other gateways hear of the job at once.
    echoing().queued_here("default", frozenset())
    assert echoed == ["default"]
    gate = echoing()  # without that ticket

    # A waiter here fits and takes it: the ring never leaves this gateway.
    task = await waiting_lease(gate, lessee(1))
    job = await store.create_job(new_job(), now=clock.now())
    gate.queued_here("default", frozenset())
    lease = await asyncio.wait_for(task, 5)
    assert lease is not None and lease.job_id == job.id
    await past_echo_timers()
    assert echoed == ["default"]
    # A waiter here that lacks the job's model does not hold the ring back.
    task = await waiting_lease(gate, lessee(2, frozenset()))
    gate.queued_here("default", frozenset({"sdxl.safetensors"}))
    assert echoed == ["default", "default"]
    # One that fits but finds the job gone (taken elsewhere): the ring leaves late.
    gate.queued_here("default", frozenset())
    await past_echo_timers()
    assert echoed == ["default", "default", "default"]
    task.cancel()
