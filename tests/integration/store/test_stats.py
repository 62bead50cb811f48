"""The dashboard's counting queries and the all-owners job list, on every database."""

from __future__ import annotations

from datetime import timedelta

from comfygate.clock import FakeClock
from comfygate.jobs.model import JobFailure, JobStatus
from comfygate.jobs.stats import FinishedCount, PoolDepth, window
from comfygate.store import SqlJobStore
from comfygate.store.stats import SqlStatsStore
from tests.integration.store.helpers import OUT, claim, new_job


async def test_pool_depths_count_queued_and_leased_jobs(
    store: SqlJobStore, clock: FakeClock
) -> None:
    stats = SqlStatsStore(store.db)
    assert await stats.pool_depths() == []
    for _ in range(3):
        await store.create_job(new_job(), now=clock.now())
    await store.create_job(new_job(pool="gpu"), now=clock.now())
    await claim(store, clock)  # running
    canceling, _ = await claim(store, clock)
    await store.request_cancel(canceling.id, now=clock.now())
    gpu, _ = await claim(store, clock, pool="gpu")
    await store.complete(gpu.id, gpu.lease_token, [OUT], now=clock.now())
    assert await stats.pool_depths() == [PoolDepth(pool="default", queued=1, running=2)]
    await store.create_job(new_job(pool="gpu"), now=clock.now())
    assert await stats.pool_depths() == [
        PoolDepth(pool="default", queued=1, running=2),
        PoolDepth(pool="gpu", queued=1, running=0),
    ]


async def test_finished_per_minute_by_status(store: SqlJobStore, clock: FakeClock) -> None:
    stats = SqlStatsStore(store.db)
    clock.advance(30)  # 00:00:30
    since, until = window(clock.now(), 60)
    assert (until - since) == timedelta(minutes=60)
    assert until - clock.now() == timedelta(seconds=30)

    early = await store.create_job(new_job(), now=clock.now())
    await store.request_cancel(early.id, now=since - timedelta(seconds=1))  # before the window

    async def succeed() -> None:
        await store.create_job(new_job(), now=clock.now())
        job, _ = await claim(store, clock)
        await store.complete(job.id, job.lease_token, [OUT], now=clock.now())

    await succeed()  # minute 59 (the current minute)
    await succeed()
    queued = await store.create_job(new_job(), now=clock.now())
    await store.request_cancel(queued.id, now=clock.now())  # canceled, minute 59
    clock.advance(-45 * 60)  # 45 minutes earlier: minute 14
    await succeed()
    await store.create_job(new_job(), now=clock.now())
    job, _ = await claim(store, clock)
    failure = JobFailure(code="execution_failed", message="x")
    await store.fail(job.id, job.lease_token, failure, retry_at=None, now=clock.now())
    # a retry is not an outcome: the job goes back to the queue, unfinished
    await store.create_job(new_job(), now=clock.now())
    job, _ = await claim(store, clock)
    await store.fail(job.id, job.lease_token, failure, retry_at=clock.now(), now=clock.now())

    got = await stats.finished_per_minute(since=since, until=until)
    assert sorted(got, key=lambda c: (c.minute, c.status)) == [
        FinishedCount(minute=14, status=JobStatus.FAILED, count=1),
        FinishedCount(minute=14, status=JobStatus.SUCCEEDED, count=1),
        FinishedCount(minute=59, status=JobStatus.CANCELED, count=1),
        FinishedCount(minute=59, status=JobStatus.SUCCEEDED, count=2),
    ]
    later = await stats.finished_per_minute(since=until, until=until + timedelta(hours=1))
    assert later == []


async def test_list_jobs_of_every_owner_with_filters(store: SqlJobStore, clock: FakeClock) -> None:
    a = await store.create_job(new_job(owner_id="alice"), now=clock.now())
    b = await store.create_job(new_job(owner_id="bob", pool="gpu"), now=clock.now())
    c = await store.create_job(new_job(owner_id="carol"), now=clock.now())
    await store.request_cancel(c.id, now=clock.now())
    everyone = await store.list_jobs(owner_id=None)
    assert [j.id for j in everyone] == [c.id, b.id, a.id]
    assert [j.id for j in await store.list_jobs(owner_id=None, pool="gpu")] == [b.id]
    assert [j.id for j in await store.list_jobs(owner_id="alice")] == [a.id]
    canceled = await store.list_jobs(owner_id=None, status=JobStatus.CANCELED)
    assert [j.id for j in canceled] == [c.id]
    page = await store.list_jobs(owner_id=None, before_id=c.id, limit=1)
    assert [j.id for j in page] == [b.id]
