"""What JobService relies on of its store (the ClientStore port), checked on the fake
its unit tests use and on the real store, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from comfygate.clock import FakeClock
from comfygate.errors import (
    IdempotencyKeyInFlight,
    InvalidTransition,
    NotFound,
    QueueFull,
    TooManyActiveJobs,
)
from comfygate.ids import new_id, new_prompt_id
from comfygate.jobs.model import Claim, InputFile, JobStatus, KeyReservation
from comfygate.jobs.ports import ClientStore
from comfygate.jobs.quota import Admission
from tests.integration.store.conftest import opened_store
from tests.integration.store.helpers import new_job
from tests.unit.jobs.fakes import FakeStore


@pytest.fixture
async def store(fake_or_database: str | None, clock: FakeClock) -> AsyncIterator[ClientStore]:
    if fake_or_database is None:
        yield FakeStore()
        return
    async with opened_store(fake_or_database, clock) as real:
        yield real


def claim_for(pool: str = "default", models: frozenset[str] | None = None) -> Claim:
    return Claim(
        pool=pool,
        agent_id="a1",
        backend="http://gpu",
        prompt_id=new_prompt_id(),
        lease_token=new_id(),
        lease_ttl_s=30.0,
        models=models,
    )


async def test_a_new_job_is_queued_with_its_first_status_event(
    store: ClientStore, clock: FakeClock
) -> None:
    job = await store.create_job(new_job(params={"seed": 3}), now=clock.now())
    assert (job.status, job.last_seq, job.attempts, job.params) == (
        JobStatus.QUEUED,
        1,
        0,
        {"seed": 3},
    )
    events, read = await store.events_and_job(job.id, 0)
    assert read == job == await store.get_job(job.id)
    assert [(e.seq, e.type, e.data["status"]) for e in events] == [(1, "status", "queued")]
    assert await store.events_and_job(job.id, 1) == ([], job)
    assert await store.events_and_job("nope", 0) == ([], None)
    assert await store.get_job("nope") is None


async def test_a_full_pool_refuses_and_makes_nothing(store: ClientStore, clock: FakeClock) -> None:
    await store.create_job(new_job(), now=clock.now(), max_queued=1)
    refused = new_job()
    with pytest.raises(QueueFull):
        await store.create_job(refused, now=clock.now(), max_queued=1)
    assert await store.get_job(refused.id) is None
    await store.create_job(new_job(pool="other"), now=clock.now(), max_queued=1)


async def test_an_owner_at_its_limit_of_active_jobs_is_refused(
    store: ClientStore, clock: FakeClock
) -> None:
    limit = Admission(max_active=2)
    first = await store.create_job(new_job(), now=clock.now(), admission=limit)
    await store.create_job(new_job(), now=clock.now(), admission=limit)
    refused = new_job()
    with pytest.raises(TooManyActiveJobs):
        await store.create_job(refused, now=clock.now(), admission=limit)
    assert await store.get_job(refused.id) is None
    await store.create_job(new_job(owner_id="bob"), now=clock.now(), admission=limit)
    await store.request_cancel(first.id, now=clock.now())  # an ended job is not active
    await store.create_job(new_job(), now=clock.now(), admission=limit)


async def test_a_reserved_key_names_its_job_and_then_holds_its_answer(
    store: ClientStore, clock: FakeClock
) -> None:
    now = clock.now()
    assert (
        await store.reserve_idempotency_key(owner_id="o", key="k", fingerprint="f", now=now) is None
    )
    held = await store.reserve_idempotency_key(owner_id="o", key="k", fingerprint="g", now=now)
    assert held is not None and (held.fingerprint, held.job_id, held.status_code) == (
        "f",
        None,
        None,
    )
    reservation = KeyReservation(owner_id="o", key="k", reserved_at=now)
    job = await store.create_job(new_job(owner_id="o"), now=now, reservation=reservation)
    named = await store.reserve_idempotency_key(owner_id="o", key="k", fingerprint="f", now=now)
    assert named is not None and named.job_id == job.id
    assert not await store.take_over_idempotency_key(named, now=now)  # it made its job
    await store.release_idempotency_key(reservation)  # too late: the job exists
    await store.finish_idempotency_key(
        owner_id="o", key="k", status_code=202, body={"id": job.id}, job_id=job.id
    )
    answered = await store.reserve_idempotency_key(owner_id="o", key="k", fingerprint="f", now=now)
    assert answered is not None
    assert (answered.status_code, answered.body, answered.job_id) == (202, {"id": job.id}, job.id)


async def test_a_key_taken_over_fences_out_its_first_request(
    store: ClientStore, clock: FakeClock
) -> None:
    first_at = clock.now()
    await store.reserve_idempotency_key(owner_id="o", key="k", fingerprint="f", now=first_at)
    record = await store.reserve_idempotency_key(
        owner_id="o", key="k", fingerprint="f", now=first_at
    )
    assert record is not None
    clock.advance(30)
    assert await store.take_over_idempotency_key(record, now=clock.now())
    assert not await store.take_over_idempotency_key(record, now=clock.now())  # taken already
    first = KeyReservation(owner_id="o", key="k", reserved_at=first_at)
    late = new_job(owner_id="o")
    with pytest.raises(IdempotencyKeyInFlight):
        await store.create_job(late, now=clock.now(), reservation=first)
    assert await store.get_job(late.id) is None
    await store.release_idempotency_key(first)  # not the first request's any more
    kept = await store.reserve_idempotency_key(owner_id="o", key="k", fingerprint="f", now=first_at)
    assert kept is not None and kept.created_at == clock.now()
    await store.release_idempotency_key(
        KeyReservation(owner_id="o", key="k", reserved_at=clock.now())
    )
    assert (
        await store.reserve_idempotency_key(owner_id="o", key="k", fingerprint="f", now=first_at)
        is None
    )


async def test_create_and_claim_takes_what_the_queue_puts_first(
    store: ClientStore, clock: FakeClock
) -> None:
    older = await store.create_job(new_job(), now=clock.now())
    claim = claim_for()
    created, claimed = await store.create_and_claim(new_job(), claim, now=clock.now())
    assert claimed is not None
    taken, attempt = claimed
    assert (taken.id, taken.status, taken.attempts, taken.last_seq) == (
        older.id,
        JobStatus.RUNNING,
        1,
        2,
    )
    assert (attempt.job_id, attempt.attempt, attempt.prompt_id) == (older.id, 1, claim.prompt_id)
    assert taken.lease_token == claim.lease_token and taken.lease_owner == claim.agent_id
    assert await store.get_job(older.id) == taken
    events, _ = await store.events_and_job(older.id, 0)
    assert [e.data["status"] for e in events] == ["queued", "running"]
    assert created.status is JobStatus.QUEUED
    assert (await store.get_job(created.id)) == created
    # A higher priority goes first, whatever its age.
    urgent = await store.create_job(new_job(priority=9), now=clock.now())
    _, claimed = await store.create_and_claim(new_job(), claim_for(), now=clock.now())
    assert claimed is not None and claimed[0].id == urgent.id


async def test_create_and_claim_takes_only_a_job_the_backend_has_the_models_for(
    store: ClientStore, clock: FakeClock
) -> None:
    needs = new_job(models=("sd15.safetensors",))
    created, claimed = await store.create_and_claim(
        needs, claim_for(models=frozenset()), now=clock.now()
    )
    assert claimed is None and created.status is JobStatus.QUEUED
    _, claimed = await store.create_and_claim(
        new_job(pool="p2"), claim_for("p2", frozenset({"sd15.safetensors"})), now=clock.now()
    )
    assert claimed is not None and claimed[0].pool == "p2"
    _, claimed = await store.create_and_claim(
        new_job(), claim_for(models=frozenset({"sd15.safetensors"})), now=clock.now()
    )
    assert claimed is not None and claimed[0].id == needs.id


async def test_cancel_ends_a_queued_job_and_asks_a_running_one_to_stop(
    store: ClientStore, clock: FakeClock
) -> None:
    queued = await store.create_job(new_job(), now=clock.now())
    clock.advance(5)
    canceled = await store.request_cancel(queued.id, now=clock.now())
    assert (canceled.status, canceled.finished_at, canceled.last_seq) == (
        JobStatus.CANCELED,
        clock.now(),
        2,
    )
    with pytest.raises(InvalidTransition):
        await store.request_cancel(queued.id, now=clock.now())
    _, claimed = await store.create_and_claim(new_job(), claim_for(), now=clock.now())
    assert claimed is not None
    running = claimed[0]
    canceling = await store.request_cancel(running.id, now=clock.now())
    assert canceling.status is JobStatus.CANCELING and canceling.finished_at is None
    assert canceling.cancel_requested_at == clock.now()
    assert await store.request_cancel(running.id, now=clock.now()) == canceling
    events, _ = await store.events_and_job(running.id, 0)
    assert [e.data["status"] for e in events] == ["queued", "running", "canceling"]
    with pytest.raises(NotFound):
        await store.request_cancel("nope", now=clock.now())


async def test_queued_jobs_past_their_time_expire(store: ClientStore, clock: FakeClock) -> None:
    soon = await store.create_job(
        new_job(expires_at=clock.now() + timedelta(seconds=10)), now=clock.now()
    )
    later = await store.create_job(
        new_job(expires_at=clock.now() + timedelta(seconds=99)), now=clock.now()
    )
    forever = await store.create_job(new_job(), now=clock.now())
    clock.advance(10)
    [expired] = await store.expire_queued(now=clock.now())
    assert (expired.id, expired.status, expired.finished_at) == (
        soon.id,
        JobStatus.EXPIRED,
        clock.now(),
    )
    assert expired.error is not None and expired.error.code == "expired"
    for waiting in (later, forever):
        assert await store.get_job(waiting.id) == waiting
    assert await store.expire_queued(now=clock.now()) == []


async def test_only_an_ended_job_is_deleted_and_it_stays_a_tombstone(
    store: ClientStore, clock: FakeClock
) -> None:
    _, claimed = await store.create_and_claim(new_job(), claim_for(), now=clock.now())
    assert claimed is not None
    with pytest.raises(InvalidTransition):
        await store.delete_job(claimed[0].id, now=clock.now())
    job = await store.create_job(new_job(params={"p": 1}, metadata={"m": 2}), now=clock.now())
    await store.request_cancel(job.id, now=clock.now())
    clock.advance(1)
    tombstone = await store.delete_job(job.id, now=clock.now())
    assert tombstone.deleted_at == clock.now()
    assert (tombstone.status, tombstone.params, tombstone.metadata) == (JobStatus.CANCELED, {}, {})
    assert await store.events_and_job(job.id, 0) == ([], tombstone)
    clock.advance(1)
    assert await store.delete_job(job.id, now=clock.now()) == tombstone
    with pytest.raises(NotFound):
        await store.delete_job("nope", now=clock.now())


async def test_finished_since_counts_the_pools_ended_jobs(
    store: ClientStore, clock: FakeClock
) -> None:
    start = clock.now()
    for pool in ("default", "default", "other"):
        job = await store.create_job(new_job(pool=pool), now=clock.now())
        clock.advance(1)
        await store.request_cancel(job.id, now=clock.now())
    await store.create_job(new_job(), now=clock.now())  # still queued
    assert await store.finished_since(pool="default", since=start) == 2
    assert await store.finished_since(pool="default", since=start + timedelta(seconds=2)) == 1
    assert await store.finished_since(pool="none", since=start) == 0


async def test_inputs_in_use_are_the_folders_a_job_names(
    store: ClientStore, clock: FakeClock
) -> None:
    image = InputFile(key="inputs/u1/a.png", filename="a.png", bindings=(("3", "image"),))
    job = await store.create_job(new_job(inputs=(image,)), now=clock.now())
    folders = ["inputs/u1", "inputs/u2", "inputs/u"]
    assert await store.inputs_in_use(folders) == {"inputs/u1"}
    await store.request_cancel(job.id, now=clock.now())
    await store.delete_job(job.id, now=clock.now())
    assert await store.inputs_in_use(folders) == set()
