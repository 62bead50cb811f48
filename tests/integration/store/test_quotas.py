"""Concurrency limits, budgets and charges in the submit transaction, on every database."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comfygate.cli import app
from comfygate.clock import FakeClock
from comfygate.errors import QuotaExceeded, TooManyActiveJobs
from comfygate.jobs.model import JobFailure
from comfygate.jobs.quota import CHARGES_KEPT, Admission, Budget
from comfygate.store import SqlJobStore
from comfygate.store.quotas import SqlBudgets
from tests.integration.store.helpers import claim, new_job

RACERS = 24


async def race(store: SqlJobStore, clock: FakeClock, admission: Admission) -> list[object]:
    """RACERS submits of one owner at once; each result is a Job or the error it got."""
    return await asyncio.gather(
        *(
            store.create_job(new_job(owner_id="alice"), now=clock.now(), admission=admission)
            for _ in range(RACERS)
        ),
        return_exceptions=True,
    )


async def test_concurrent_submits_cannot_pass_the_active_limit(
    store: SqlJobStore, clock: FakeClock
) -> None:
    results = await race(store, clock, Admission(max_active=3))
    refused = [r for r in results if isinstance(r, TooManyActiveJobs)]
    assert len(refused) == RACERS - 3, results
    assert refused[0].details == {"active_jobs": 3, "max_active": 3}
    # Another owner has a limit of its own.
    await store.create_job(
        new_job(owner_id="bob"), now=clock.now(), admission=Admission(max_active=3)
    )


async def test_a_finished_job_frees_its_place(store: SqlJobStore, clock: FakeClock) -> None:
    one = Admission(max_active=1)
    job = await store.create_job(new_job(), now=clock.now(), admission=one)
    with pytest.raises(TooManyActiveJobs):
        await store.create_job(new_job(), now=clock.now(), admission=one)
    await store.request_cancel(job.id, now=clock.now())
    await store.create_job(new_job(), now=clock.now(), admission=one)


async def test_concurrent_submits_cannot_overspend_a_budget(
    store: SqlJobStore, clock: FakeClock
) -> None:
    budgets = SqlBudgets(store.db)
    await budgets.set("alice", Budget(10, "day"), now=clock.now())
    results = await race(store, clock, Admission(cost=3))
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(refused) == RACERS - 3, results
    usage = await budgets.usage("alice", default=None, now=clock.now())
    assert (usage.used, usage.remaining, usage.active_jobs) == (9, 1, 3)
    details = refused[0].details
    assert details["remaining"] == 1 and details["cost"] == 3 and details["budget"] == 10
    assert details["resets_at"] == usage.resets_at.isoformat()


async def test_the_default_budget_applies_to_an_owner_without_one(
    store: SqlJobStore, clock: FakeClock
) -> None:
    default = Budget(5, "month")
    admission = Admission(cost=5, default_budget=default)
    await store.create_job(new_job(), now=clock.now(), admission=admission)
    with pytest.raises(QuotaExceeded):
        await store.create_job(new_job(), now=clock.now(), admission=admission)
    # An owner's own budget replaces the default.
    await SqlBudgets(store.db).set("alice", Budget(100, "month"), now=clock.now())
    await store.create_job(new_job(), now=clock.now(), admission=admission)


async def test_a_new_period_starts_from_zero(store: SqlJobStore, clock: FakeClock) -> None:
    budgets = SqlBudgets(store.db)
    await budgets.set("alice", Budget(4, "day"), now=clock.now())
    await store.create_job(new_job(), now=clock.now(), admission=Admission(cost=4))
    with pytest.raises(QuotaExceeded):
        await store.create_job(new_job(), now=clock.now(), admission=Admission(cost=1))
    clock.advance(24 * 3600)
    await store.create_job(new_job(), now=clock.now(), admission=Admission(cost=4))


async def spent(store: SqlJobStore, clock: FakeClock) -> float:
    usage = await SqlBudgets(store.db).usage("alice", default=Budget(1000, "day"), now=clock.now())
    return usage.used


async def test_refunds_follow_how_the_job_ended(store: SqlJobStore, clock: FakeClock) -> None:
    charge = Admission(cost=1)

    async def failed_with(code: str) -> None:
        job = await store.create_job(new_job(), now=clock.now(), admission=charge)
        leased, _ = await claim(store, clock)
        assert leased.id == job.id
        await store.fail(
            job.id,
            leased.lease_token,
            JobFailure(code=code, message="m"),
            retry_at=None,
            now=clock.now(),
        )

    queued = await store.create_job(new_job(), now=clock.now(), admission=charge)
    assert await spent(store, clock) == 1, "a queued job is charged"
    await store.request_cancel(queued.id, now=clock.now())
    assert await spent(store, clock) == 0, "canceled before it started: refunded"

    expiring = new_job(expires_at=clock.now() + timedelta(seconds=1))
    await store.create_job(expiring, now=clock.now(), admission=charge)
    clock.advance(2)
    await store.expire_queued(now=clock.now())
    assert await spent(store, clock) == 0, "expired in the queue: refunded"

    await failed_with("backend_unreachable")
    await failed_with("storage_error")
    assert await spent(store, clock) == 0, "failed for a reason of ours: refunded"
    await failed_with("execution_failed")
    await failed_with("timeout")
    assert await spent(store, clock) == 2, "the caller's job ran: charged"

    running = await store.create_job(new_job(), now=clock.now(), admission=charge)
    leased, _ = await claim(store, clock)
    await store.request_cancel(running.id, now=clock.now())
    await store.finish_cancel(running.id, leased.lease_token, now=clock.now())
    assert await spent(store, clock) == 3, "canceled after it started: charged"


async def test_budgets_are_set_listed_and_removed(store: SqlJobStore, clock: FakeClock) -> None:
    budgets = SqlBudgets(store.db)
    await budgets.set("bob", Budget(5, "day"), now=clock.now())
    await budgets.set("alice", Budget(1, "day"), now=clock.now())
    await budgets.set("alice", Budget(50, "month"), now=clock.now())
    assert await budgets.all() == [("alice", Budget(50, "month")), ("bob", Budget(5, "day"))]
    assert await budgets.remove("bob")
    assert not await budgets.remove("bob")
    assert await budgets.all() == [("alice", Budget(50, "month"))]


async def test_old_charges_are_purged(store: SqlJobStore, clock: FakeClock) -> None:
    budgets = SqlBudgets(store.db)
    await store.create_job(new_job(), now=clock.now(), admission=Admission(cost=2))
    clock.advance(40 * 24 * 3600)
    await store.create_job(new_job(), now=clock.now(), admission=Admission(cost=3))
    assert await budgets.purge_charges(older_than=clock.now() - CHARGES_KEPT) == 1
    usage = await budgets.usage("alice", default=Budget(100, "month"), now=clock.now())
    assert usage.used == 3


def test_the_cli_sets_lists_and_removes_budgets(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    made = runner.invoke(
        app, ["budgets", "set", "key-1", "--amount", "50", "--period", "month", *data]
    )
    assert made.exit_code == 0, made.output
    assert made.output.strip() == "key-1  50 a month"
    runner.invoke(app, ["budgets", "set", "visitor:abc", "--amount", "2.5", *data])
    listed = runner.invoke(app, ["budgets", "list", *data])
    assert listed.output.splitlines() == ["key-1  50 a month", "visitor:abc  2.5 a day"]
    assert runner.invoke(app, ["budgets", "remove", "key-1", *data]).exit_code == 0
    again = runner.invoke(app, ["budgets", "remove", "key-1", *data])
    assert again.exit_code == 1 and "no budget for key-1" in again.output
    bad = runner.invoke(app, ["budgets", "set", "k", "--amount", "-1", *data])
    assert bad.exit_code == 2
    bad_period = runner.invoke(
        app, ["budgets", "set", "k", "--amount", "1", "--period", "week", *data]
    )
    assert bad_period.exit_code == 2
