"""The JobStore contract, on every database the gateway runs on."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from comfygate.clock import FakeClock
from comfygate.errors import (
    IdempotencyKeyInFlight,
    InvalidTransition,
    LeaseLost,
    NotFound,
    QueueFull,
)
from comfygate.ids import new_id, new_prompt_id
from comfygate.jobs.model import (
    JobFailure,
    JobStatus,
    KeyReservation,
    Progress,
)
from comfygate.store import SqlJobStore
from tests.integration.store.helpers import OUT, claim, new_job


async def test_create_get_list_and_page(store: SqlJobStore, clock: FakeClock) -> None:
    ids = []
    for _ in range(5):
        job = await store.create_job(new_job(), now=clock.now())
        assert job.status is JobStatus.QUEUED and job.last_seq == 1
        ids.append(job.id)
    await store.create_job(new_job(owner_id="bob"), now=clock.now())
    got = await store.get_job(ids[0])
    assert got is not None and got.params == {"a": 1} and got.created_at.tzinfo is not None
    page1 = await store.list_jobs(owner_id="alice", limit=3)
    page2 = await store.list_jobs(owner_id="alice", limit=3, before_id=page1[-1].id)
    assert [j.id for j in page1 + page2] == ids[::-1]
    assert await store.list_jobs(owner_id="alice", status=JobStatus.RUNNING) == []


async def test_claim_order_priority_then_age_and_pool(store: SqlJobStore, clock: FakeClock) -> None:
    low = await store.create_job(new_job(priority=1), now=clock.now())
    a = await store.create_job(new_job(), now=clock.now())
    b = await store.create_job(new_job(), now=clock.now())
    high = await store.create_job(new_job(priority=9), now=clock.now())
    other = await store.create_job(new_job(pool="gpu"), now=clock.now())
    assert await store.queue_position(low) == 3
    order = [(await claim(store, clock))[0].id for _ in range(4)]
    assert order == [high.id, a.id, b.id, low.id]
    assert await claim(store, clock) is None
    job, attempt = await claim(store, clock, pool="gpu")
    assert job.id == other.id and attempt.attempt == 1 and job.attempts == 1


async def test_claim_skips_not_before_and_expired(store: SqlJobStore, clock: FakeClock) -> None:
    await store.create_job(new_job(expires_at=clock.now() - timedelta(seconds=1)), now=clock.now())
    assert await claim(store, clock) is None
    expired = await store.expire_queued(now=clock.now())
    assert [j.status for j in expired] == [JobStatus.EXPIRED]
    job = await store.create_job(new_job(), now=clock.now())
    leased, _ = await claim(store, clock)
    await store.fail(
        job.id,
        leased.lease_token,
        JobFailure(code="backend_unreachable", message="x"),
        retry_at=clock.now() + timedelta(seconds=8),
        now=clock.now(),
    )
    assert await claim(store, clock) is None
    clock.advance(9)
    again, attempt = await claim(store, clock, agent="a2")  # another backend
    assert again.id == job.id and attempt.attempt == 2
    assert [a.attempt for a in await store.attempts(job.id)] == [1, 2]


async def test_no_job_is_claimed_twice_under_concurrency(
    store: SqlJobStore, clock: FakeClock
) -> None:
    for _ in range(40):
        await store.create_job(new_job(), now=clock.now())

    async def worker(n: int) -> list[str]:
        got: list[str] = []
        # More than all 40 can only be a double claim: stop there, the count says so.
        while len(got) <= 40 and (c := await claim(store, clock, agent=f"a{n}")) is not None:
            got.append(c[0].id)
        return got

    results = await asyncio.gather(*[worker(n) for n in range(8)])
    claimed = [j for r in results for j in r]
    assert len(claimed) == 40 == len(set(claimed))


async def test_fenced_writes_and_the_zombie_agent(store: SqlJobStore, clock: FakeClock) -> None:
    job = await store.create_job(new_job(), now=clock.now())
    first, _ = await claim(store, clock, agent="a1")
    with pytest.raises(LeaseLost):
        await store.heartbeat(job.id, "wrong", lease_ttl_s=30, now=clock.now())
    with pytest.raises(LeaseLost):
        await store.complete(job.id, "wrong", [OUT], now=clock.now())
    await store.save_progress(job.id, first.lease_token, Progress(value=0.5, nodes_done=1))
    await store.fail(
        job.id,
        first.lease_token,
        JobFailure(code="websocket_lost", message="x"),
        retry_at=clock.now(),
        now=clock.now(),
    )
    second, _ = await claim(store, clock, agent="a2")
    assert second.lease_token != first.lease_token
    with pytest.raises(LeaseLost):
        await store.complete(job.id, first.lease_token, [OUT], now=clock.now())
    done = await store.complete(job.id, second.lease_token, [OUT], now=clock.now())
    assert (
        done.status is JobStatus.SUCCEEDED and done.outputs == (OUT,) and done.lease_token is None
    )
    with pytest.raises(LeaseLost):
        await store.complete(job.id, second.lease_token, [OUT], now=clock.now())
    events = await store.events_after(job.id, 0)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events] == ["status", "status", "status", "status", "output", "status"]
    assert [e.data["status"] for e in events if e.type == "status"] == [
        "queued",
        "running",
        "queued",
        "running",
        "succeeded",
    ]
    assert [e.seq for e in await store.events_after(job.id, 4)] == [5, 6]
    other = await store.create_job(new_job(), now=clock.now())
    many = await store.events_after_many({job.id: 4, other.id: 0, "no-such-job": 0})
    assert {j: [e.seq for e in events] for j, events in many.items()} == {
        job.id: [5, 6],
        other.id: [1],
    }
    assert await store.events_after_many({job.id: 6}) == {}
    outcomes = [a.outcome for a in await store.attempts(job.id)]
    assert outcomes == ["websocket_lost", "succeeded"]


async def test_cancel_rules(store: SqlJobStore, clock: FakeClock) -> None:
    queued = await store.create_job(new_job(), now=clock.now())
    assert (await store.request_cancel(queued.id, now=clock.now())).status is JobStatus.CANCELED
    with pytest.raises(InvalidTransition):
        await store.request_cancel(queued.id, now=clock.now())
    with pytest.raises(NotFound):
        await store.request_cancel(new_id(), now=clock.now())

    running = await store.create_job(new_job(), now=clock.now())
    leased, _ = await claim(store, clock)
    canceling = await store.request_cancel(running.id, now=clock.now())
    assert canceling.status is JobStatus.CANCELING and canceling.cancel_requested_at is not None
    assert (await store.request_cancel(running.id, now=clock.now())).status is JobStatus.CANCELING
    beat = await store.heartbeat(running.id, leased.lease_token, lease_ttl_s=30, now=clock.now())
    assert beat.status is JobStatus.CANCELING
    # a retryable failure while canceling ends canceled, not queued
    ended = await store.fail(
        running.id,
        leased.lease_token,
        JobFailure(code="x", message="y"),
        retry_at=clock.now(),
        now=clock.now(),
    )
    assert ended.status is JobStatus.CANCELED

    racing = await store.create_job(new_job(), now=clock.now())
    lease2, _ = await claim(store, clock)
    await store.request_cancel(racing.id, now=clock.now())
    done = await store.complete(racing.id, lease2.lease_token, [OUT], now=clock.now())
    assert done.status is JobStatus.SUCCEEDED, "a complete that wins the race stands"

    last = await store.create_job(new_job(), now=clock.now())
    lease3, _ = await claim(store, clock)
    await store.request_cancel(last.id, now=clock.now())
    assert (await store.finish_cancel(last.id, lease3.lease_token, now=clock.now())).status is (
        JobStatus.CANCELED
    )


async def test_fail_without_retry_is_terminal(store: SqlJobStore, clock: FakeClock) -> None:
    job = await store.create_job(new_job(), now=clock.now())
    leased, _ = await claim(store, clock)
    failed = await store.fail(
        job.id,
        leased.lease_token,
        JobFailure(code="prompt_rejected", message="bad", node_id="2"),
        retry_at=None,
        now=clock.now(),
    )
    assert failed.status is JobStatus.FAILED and failed.error is not None
    assert failed.error.node_id == "2" and failed.finished_at is not None


async def test_idempotency_reservation_race(store: SqlJobStore, clock: FakeClock) -> None:
    results = await asyncio.gather(
        *[
            store.reserve_idempotency_key(
                owner_id="alice", key="k", fingerprint="f", now=clock.now()
            )
            for _ in range(10)
        ]
    )
    assert sum(r is None for r in results) == 1
    await store.finish_idempotency_key(
        owner_id="alice", key="k", status_code=202, body={"id": "x"}, job_id=None
    )
    again = await store.reserve_idempotency_key(
        owner_id="alice", key="k", fingerprint="g", now=clock.now()
    )
    assert again is not None and again.status_code == 202 and again.fingerprint == "f"
    assert (
        await store.reserve_idempotency_key(
            owner_id="bob", key="k", fingerprint="f", now=clock.now()
        )
        is None
    )
    await store.release_idempotency_key(
        KeyReservation(owner_id="bob", key="k", reserved_at=clock.now())
    )
    assert (
        await store.reserve_idempotency_key(
            owner_id="bob", key="k", fingerprint="f", now=clock.now()
        )
        is None
    )
    clock.advance(3600)
    assert await store.purge_idempotency_keys(older_than=clock.now()) == 2


async def test_an_abandoned_key_is_taken_over_and_fences_its_first_request(
    store: SqlJobStore, clock: FakeClock
) -> None:
    first = KeyReservation(owner_id="alice", key="k", reserved_at=clock.now())
    await store.reserve_idempotency_key(
        owner_id="alice", key="k", fingerprint="f", now=first.reserved_at
    )
    clock.advance(30)
    record = await store.reserve_idempotency_key(
        owner_id="alice", key="k", fingerprint="f", now=clock.now()
    )
    assert record is not None and record.job_id is None
    assert await store.take_over_idempotency_key(record, now=clock.now())
    assert not await store.take_over_idempotency_key(record, now=clock.now())
    second = KeyReservation(owner_id="alice", key="k", reserved_at=clock.now())

    # The first request was only slow: it can neither make its job nor drop the key.
    doomed = new_job()
    with pytest.raises(IdempotencyKeyInFlight):
        await store.create_job(doomed, now=clock.now(), reservation=first)
    assert await store.get_job(doomed.id) is None
    await store.release_idempotency_key(first)
    job = await store.create_job(new_job(), now=clock.now(), reservation=second)
    linked = await store.reserve_idempotency_key(
        owner_id="alice", key="k", fingerprint="f", now=clock.now()
    )
    assert linked is not None and linked.job_id == job.id and linked.status_code is None
    assert not await store.take_over_idempotency_key(linked, now=clock.now())


async def test_changed_since_feeds_the_all_jobs_stream(
    store: SqlJobStore, clock: FakeClock
) -> None:
    old = await store.create_job(new_job(), now=clock.now())
    clock.advance(60)
    since = clock.now()
    fresh = await store.create_job(new_job(), now=clock.now())
    await store.request_cancel(old.id, now=clock.now())
    changed = await store.jobs_changed_since(owner_id="alice", since=since)
    assert {j.id for j in changed} == {old.id, fresh.id}
    # Of a job its cursor no longer names, a resume replays the events from since on.
    replayed = await store.events_after(old.id, 0, since=since)
    assert [(e.seq, e.data["status"]) for e in replayed] == [(2, "canceled")]
    assert [e.seq for e in await store.events_after(old.id, 0, since=clock.now())] == [2]
    clock.advance(0.001)
    assert await store.events_after(old.id, 0, since=clock.now()) == []


def retry_in(clock: FakeClock, seconds: float = 8.0) -> Any:
    return lambda attempts: clock.now() + timedelta(seconds=seconds * attempts)


async def test_rescue_requeues_fails_and_cancels_expired_leases(
    store: SqlJobStore, clock: FakeClock
) -> None:
    again = await store.create_job(new_job(), now=clock.now())
    spent = await store.create_job(new_job(max_attempts=1), now=clock.now())
    canceling = await store.create_job(new_job(), now=clock.now())
    fresh = await store.create_job(new_job(), now=clock.now())
    for _ in range(3):
        await claim(store, clock)
    await store.request_cancel(canceling.id, now=clock.now())
    clock.advance(31)
    await claim(store, clock)  # its lease is still fresh
    rescued = {
        j.id: j for j in await store.rescue_expired(now=clock.now(), retry_at=retry_in(clock))
    }
    assert set(rescued) == {again.id, spent.id, canceling.id}
    assert rescued[again.id].status is JobStatus.QUEUED
    assert rescued[again.id].not_before == clock.now() + timedelta(seconds=8)
    assert rescued[again.id].lease_token is None and rescued[again.id].attempts == 1
    assert rescued[spent.id].status is JobStatus.FAILED
    error = rescued[spent.id].error
    assert error is not None and error.code == "lease_expired"
    assert rescued[canceling.id].status is JobStatus.CANCELED
    current = await store.get_job(fresh.id)
    assert current is not None and current.status is JobStatus.RUNNING
    attempts = await store.attempts(again.id)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "lease_expired")]
    events = await store.events_after(again.id, 0)
    assert [e.data["status"] for e in events] == ["queued", "running", "queued"]
    assert await store.rescue_expired(now=clock.now(), retry_at=retry_in(clock)) == []


async def test_a_rescued_lease_is_fenced_out(store: SqlJobStore, clock: FakeClock) -> None:
    """The stale agent: its job is rescued and re-claimed under it; every write it
    makes afterwards is refused and the new holder's attempt is untouched."""
    await store.create_job(new_job(), now=clock.now())
    stale, _ = await claim(store, clock, agent="a1")
    clock.advance(31)
    await store.rescue_expired(now=clock.now(), retry_at=lambda _: clock.now())
    holder, attempt = await claim(store, clock, agent="a2")
    assert holder.id == stale.id and attempt.attempt == 2
    with pytest.raises(LeaseLost):
        await store.heartbeat(stale.id, stale.lease_token, lease_ttl_s=30, now=clock.now())
    with pytest.raises(LeaseLost):
        await store.complete(stale.id, stale.lease_token, [OUT], now=clock.now())
    with pytest.raises(LeaseLost):
        await store.fail(
            stale.id,
            stale.lease_token,
            JobFailure(code="x", message="y"),
            retry_at=None,
            now=clock.now(),
        )
    job = await store.complete(holder.id, holder.lease_token, [OUT], now=clock.now())
    assert job.status is JobStatus.SUCCEEDED and job.attempts == 2


async def test_a_heartbeat_renews_a_lease_before_the_rescuer_sees_it(
    store: SqlJobStore, clock: FakeClock
) -> None:
    await store.create_job(new_job(), now=clock.now())
    leased, _ = await claim(store, clock)
    clock.advance(31)  # expired, but the token still decides until a rescue
    await store.heartbeat(leased.id, leased.lease_token, lease_ttl_s=30, now=clock.now())
    assert await store.rescue_expired(now=clock.now(), retry_at=retry_in(clock)) == []


async def test_concurrent_rescuers_rescue_each_job_once(
    store: SqlJobStore, clock: FakeClock
) -> None:
    for _ in range(20):
        await store.create_job(new_job(), now=clock.now())
    for _ in range(20):
        await claim(store, clock)
    clock.advance(31)
    batches = await asyncio.gather(
        *(store.rescue_expired(now=clock.now(), retry_at=retry_in(clock)) for _ in range(4))
    )
    ids = [j.id for batch in batches for j in batch]
    assert len(ids) == 20 == len(set(ids))


async def test_fair_share_a_newcomer_starts_within_the_next_n_claims(
    store: SqlJobStore, clock: FakeClock
) -> None:
    """Owner A queues 1,000 jobs on N=4 backends; owner B's later job is among the
    next N claims."""
    backends = 4
    for _ in range(1000):
        await store.create_job(new_job(owner_id="a"), now=clock.now())
    for _ in range(backends):
        await claim(store, clock)
    late = await store.create_job(new_job(owner_id="b"), now=clock.now())
    claimed = [(await claim(store, clock))[0].id for _ in range(backends)]
    assert late.id in claimed


async def test_fair_share_busy_owners_split_the_claims_evenly(
    store: SqlJobStore, clock: FakeClock
) -> None:
    owners = ["a", "b", "c"]
    for owner in owners:  # each floods the queue in turn, not interleaved
        for _ in range(120):
            await store.create_job(new_job(owner_id=owner), now=clock.now())
    counts = dict.fromkeys(owners, 0)
    for _ in range(300):
        job, _ = await claim(store, clock)
        counts[job.owner_id] += 1
    for owner in owners:
        assert abs(counts[owner] - 100) <= 10, counts


async def test_priority_still_comes_before_fairness(store: SqlJobStore, clock: FakeClock) -> None:
    first = await store.create_job(new_job(owner_id="a"), now=clock.now())
    for _ in range(2):
        await store.create_job(new_job(owner_id="a"), now=clock.now())
    urgent = await store.create_job(new_job(owner_id="a", priority=9), now=clock.now())
    other = await store.create_job(new_job(owner_id="b"), now=clock.now())
    order = [(await claim(store, clock))[0].id for _ in range(3)]
    # a's 4th job jumps the queue on priority; then b's first job comes right after a's
    # first, ahead of a's backlog.
    assert order == [urgent.id, first.id, other.id]


async def test_a_full_pool_refuses_new_jobs_and_keeps_the_queued(
    store: SqlJobStore, clock: FakeClock
) -> None:
    first = await store.create_job(new_job(), now=clock.now(), max_queued=2)
    await store.create_job(new_job(), now=clock.now(), max_queued=2)
    with pytest.raises(QueueFull) as refused:
        await store.create_job(new_job(), now=clock.now(), max_queued=2)
    assert refused.value.details == {"pool": "default", "queued": 2}
    await store.create_job(new_job(pool="gpu"), now=clock.now(), max_queued=2)
    await claim(store, clock)  # a running job no longer counts
    await store.create_job(new_job(), now=clock.now(), max_queued=2)
    current = await store.get_job(first.id)
    assert current is not None and current.status is JobStatus.RUNNING
    assert await store.finished_since(pool="default", since=clock.now()) == 0


async def test_queueing_a_job_reads_its_fair_key_and_pool_depth_in_one_statement(
    store: SqlJobStore, clock: FakeClock
) -> None:
    await claim(store, clock)  # the pool has a clock
    await store.create_job(new_job(), now=clock.now(), max_queued=5)
    before = store.db.statements
    await store.create_job(new_job(), now=clock.now(), max_queued=5)
    # One read (owner's last key, pool clock, depth), the job's insert, its first event.
    assert store.db.statements - before == 3


async def test_adopt_renews_an_agents_leases_on_its_backend_only(
    store: SqlJobStore, clock: FakeClock
) -> None:
    await store.create_job(new_job(), now=clock.now())
    await store.create_job(new_job(), now=clock.now())
    held, attempt = await claim(store, clock, agent="local-0")
    rescued, _ = await claim(store, clock, agent="local-0")
    clock.advance(31)
    await store.heartbeat(held.id, held.lease_token, lease_ttl_s=30, now=clock.now())
    # `rescued` is queued again; only a job still leased can be taken back.
    await store.rescue_expired(now=clock.now(), retry_at=retry_in(clock))
    tokens = iter(["t-new"])

    async def adopt(agent: str, backend: str) -> list[Any]:
        return await store.adopt(
            agent_id=agent,
            backend=backend,
            lease_ttl_s=30,
            new_token=lambda: next(tokens),
            now=clock.now(),
        )

    assert await adopt("local-1", "http://local-0") == []
    assert await adopt("local-0", "http://elsewhere") == []
    [(job, current)] = await adopt("local-0", "http://local-0")
    assert job.id == held.id and job.lease_token == "t-new" and job.attempts == 1
    assert current.prompt_id == attempt.prompt_id and current.attempt == 1
    with pytest.raises(LeaseLost):  # the old process's token is fenced out
        await store.heartbeat(held.id, held.lease_token, lease_ttl_s=30, now=clock.now())
    still = await store.get_job(rescued.id)
    assert still is not None and still.status is JobStatus.QUEUED


async def test_a_retried_job_prefers_another_backend_for_a_while(
    store: SqlJobStore, clock: FakeClock
) -> None:
    async def claim_on(backend: str) -> Any:
        return await store.claim(
            pool="default",
            agent_id=backend,
            backend=backend,
            prompt_id=new_prompt_id(),
            lease_token=new_id(),
            lease_ttl_s=30,
            now=clock.now(),
            avoid=backend,
        )

    await store.create_job(new_job(), now=clock.now())
    leased, _ = await claim_on("http://a")
    failure = JobFailure(code="out_of_memory", message="x")
    await store.fail(leased.id, leased.lease_token, failure, retry_at=clock.now(), now=clock.now())
    assert not await store.has_claimable(pool="default", now=clock.now(), avoid="http://a")
    assert await claim_on("http://a") is None
    assert await store.has_claimable(pool="default", now=clock.now(), avoid="http://b")
    clock.advance(11)  # no other backend took it: the one it failed on may
    again, attempt = await claim_on("http://a")
    assert again.id == leased.id and attempt.attempt == 2


async def test_a_retried_job_goes_to_the_other_backend_when_there_is_one(
    store: SqlJobStore, clock: FakeClock
) -> None:
    await store.create_job(new_job(), now=clock.now())
    claimed = await store.claim(
        pool="default",
        agent_id="a",
        backend="http://a",
        prompt_id=new_prompt_id(),
        lease_token=new_id(),
        lease_ttl_s=30,
        now=clock.now(),
    )
    assert claimed is not None and claimed[1].backend == "http://a"
    clock.advance(31)  # the lease runs out on backend a
    await store.rescue_expired(now=clock.now(), retry_at=lambda _: clock.now())
    assert await store.has_claimable(pool="default", now=clock.now(), avoid="http://a") is False
    assert await store.has_claimable(pool="default", now=clock.now(), avoid="http://b") is True
