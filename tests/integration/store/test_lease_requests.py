"""Lease request ids are kept in the database: a lease call retried against another
gateway gets the lease the first call took, never a second job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from comfygate.clock import Clock, FakeClock
from comfygate.errors import LeaseLost
from comfygate.ids import new_id, new_prompt_id
from comfygate.jobs.model import JobStatus, Lease, Lessee
from comfygate.jobs.worker_gate import WorkerGate
from comfygate.store import SqlJobStore, open_store
from tests.integration.store.helpers import W1, gate_over, new_job
from tests.wait import until


async def claim_for(store: SqlJobStore, clock: FakeClock, request_id: str) -> tuple[str, str]:
    """(job id, lease token) of a claim made under ``request_id``."""
    claimed = await store.claim(
        pool="default",
        agent_id="w1",
        backend="http://gpu-1",
        prompt_id=new_prompt_id(),
        lease_token=new_id(),
        lease_ttl_s=30,
        now=clock.now(),
        request_id=request_id,
    )
    assert claimed is not None
    job, _ = claimed
    assert job.lease_token is not None
    return job.id, job.lease_token


async def lease_as_w1(
    gate: WorkerGate, request_id: str, *, retry: bool = False, wait_s: float = 0.0
) -> Lease | None:
    return await gate.lease(W1, wait_s=wait_s, request_id=request_id, retry=retry)


@pytest.fixture
async def other_store(
    store: SqlJobStore, database_url: str, clock: FakeClock
) -> AsyncIterator[SqlJobStore]:
    """A second gateway's store over the same database."""
    other = await open_store(database_url, clock=clock, database_clock=False)
    try:
        yield other
    finally:
        await other.close()


async def test_a_claim_under_a_known_request_id_returns_the_recorded_lease(
    store: SqlJobStore, clock: FakeClock
) -> None:
    first = await store.create_job(new_job(), now=clock.now())
    second = await store.create_job(new_job(), now=clock.now())
    assert await claim_for(store, clock, "r1") == await claim_for(store, clock, "r1")
    recorded = await store.requested_lease(agent_id="w1", request_id="r1")
    assert recorded is not None and recorded[0].id == first.id
    assert await store.requested_lease(agent_id="w2", request_id="r1") is None
    assert (await store.get_job(second.id)).status.value == "queued"  # type: ignore[union-attr]


async def test_a_recorded_lease_that_was_rescued_is_lost(
    store: SqlJobStore, clock: FakeClock
) -> None:
    await store.create_job(new_job(max_attempts=1), now=clock.now())
    await claim_for(store, clock, "r1")
    clock.advance(31)
    assert len(await store.rescue_expired(now=clock.now(), retry_at=lambda _: clock.now())) == 1
    with pytest.raises(LeaseLost):
        await store.requested_lease(agent_id="w1", request_id="r1")


async def test_request_ids_are_purged_after_a_while(store: SqlJobStore, clock: FakeClock) -> None:
    await store.create_job(new_job(), now=clock.now())
    await claim_for(store, clock, "r1")
    assert await store.purge_lease_requests(keep_s=300, now=clock.now()) == 0
    clock.advance(301)
    assert await store.purge_lease_requests(keep_s=300, now=clock.now()) == 1
    assert await store.requested_lease(agent_id="w1", request_id="r1") is None


async def test_a_lease_retried_against_another_gateway_is_the_same_lease(
    store: SqlJobStore, other_store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    a, b = gate_over(store, clock, tmp_path), gate_over(other_store, clock, tmp_path)
    for _ in range(2):
        await store.create_job(new_job(), now=clock.now())
    first = await lease_as_w1(a, "r1")
    again = await lease_as_w1(b, "r1", retry=True)
    # Without the retry flag too, a claim under a known id finds the record.
    plain = await lease_as_w1(b, "r1")
    assert first is not None and first == again == plain
    other = await lease_as_w1(b, "r2")
    assert other is not None and other.job_id != first.job_id


async def test_a_retry_waiting_on_another_gateway_gets_the_lease_the_first_call_takes(
    store: SqlJobStore, other_store: SqlJobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call still long-polls on gateway A when its retry reaches gateway B;
    one job arrives: both answer with its one lease."""
    clock = Clock()  # the gates poll in real time
    a, b = gate_over(store, clock, tmp_path), gate_over(other_store, clock, tmp_path)
    # B's claim, whenever B sees the job, commits only after A's: the race this test is
    # about. (Had B won it, A's call, whose client has gone, would answer nothing.)
    a_claimed = asyncio.Event()
    claim_on_a, claim_on_b = store.claim, other_store.claim

    async def claim_first(**kw: Any) -> Any:
        claimed = await claim_on_a(**kw)
        a_claimed.set()
        return claimed

    async def claim_second(**kw: Any) -> Any:
        await a_claimed.wait()
        return await claim_on_b(**kw)

    monkeypatch.setattr(store, "claim", claim_first)
    monkeypatch.setattr(other_store, "claim", claim_second)
    looks = {a: 0, b: 0}

    def looking(gate: WorkerGate) -> Callable[[], bool]:
        def wanted() -> bool:  # asked by the gate before each look at the queue
            looks[gate] += 1
            return True

        return wanted

    first = asyncio.create_task(a.lease(W1, wait_s=10, request_id="r1", wanted=looking(a)))
    retried = asyncio.create_task(
        b.lease(W1, wait_s=10, request_id="r1", retry=True, wanted=looking(b))
    )
    # A second look means the first found no job: both are long-polling when it comes.
    await until(lambda: min(looks.values()) >= 2, "both lease calls to look twice")
    job = await store.create_job(new_job(), now=clock.now())
    leases = await asyncio.gather(first, retried)
    assert leases[0] is not None and leases[0] == leases[1]
    assert leases[0].job_id == job.id


@pytest.mark.postgres
# PostgreSQL only: SQLite has one writer at a time, so there is no race to lose.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_concurrent_claims_under_one_request_id_take_one_job(
    store: SqlJobStore, other_store: SqlJobStore, clock: FakeClock
) -> None:
    """Two gateways claim for the same request id at the same moment, each takes a job:
    the later transaction rolls back on the record's key and answers with the earlier
    lease, so its job stays queued."""
    for _ in range(8):
        await store.create_job(new_job(), now=clock.now())
    for n in range(4):
        pair = await asyncio.gather(
            *(claim_for(s, clock, f"race-{n}") for s in (store, other_store))
        )
        assert pair[0] == pair[1]
    running = await store.list_jobs(owner_id=None, status=JobStatus.RUNNING)
    assert len(running) == 4


async def test_an_agent_of_several_pools_gets_work_from_each_and_is_seen_in_each(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    gate = gate_over(store, clock, tmp_path)
    lessee = Lessee(
        agent_id="w1",
        backend="http://gpu-1",
        pools=("a", "b"),
        capacity=1,
        models=frozenset({"m.safetensors"}),
    )
    in_a = await store.create_job(new_job(pool="a"), now=clock.now())
    in_b = await store.create_job(new_job(pool="b"), now=clock.now())
    got = {(await gate.lease(lessee, wait_s=0)) for _ in range(2)}
    assert {x.job_id for x in got if x is not None} == {in_a.id, in_b.id}
    assert gate.lessees() == [lessee]
    assert gate.backends_seen("a") == gate.backends_seen("b") == {"http://gpu-1"}
    assert gate.backends_seen("c") == set()
