"""What the relay reads of the store's timeline (the EventLog port), checked on the
fake its unit tests use and on the real store, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import pytest

from comfygate.clock import FakeClock
from comfygate.events.relay import EventLog
from comfygate.store import SqlJobStore
from tests.integration.store.conftest import opened_store
from tests.integration.store.helpers import new_job
from tests.unit.events.fakes import FakeLog


class Timeline(Protocol):
    """Writes a job's timeline the way its log is filled: by the store's transitions,
    or by hand for the fake."""

    log: EventLog

    async def queued(self) -> str:
        """A new job with its first event; its id."""

    async def canceled(self, job_id: str) -> None:
        """One more event of the job."""


class FakeTimeline:
    def __init__(self) -> None:
        self.fake = FakeLog()
        self.log: EventLog = self.fake
        self.jobs = 0

    async def queued(self) -> str:
        self.jobs += 1
        job_id = f"j{self.jobs}"
        self.fake.append(job_id, "status", {"status": "queued"})
        return job_id

    async def canceled(self, job_id: str) -> None:
        self.fake.append(job_id, "status", {"status": "canceled"})


class StoreTimeline:
    def __init__(self, store: SqlJobStore, clock: FakeClock) -> None:
        self.store, self.clock = store, clock
        self.log: EventLog = store

    async def queued(self) -> str:
        return (await self.store.create_job(new_job(), now=self.clock.now())).id

    async def canceled(self, job_id: str) -> None:
        await self.store.request_cancel(job_id, now=self.clock.now())


@pytest.fixture
async def timeline(fake_or_database: str | None, clock: FakeClock) -> AsyncIterator[Timeline]:
    if fake_or_database is None:
        yield FakeTimeline()
        return
    async with opened_store(fake_or_database, clock) as store:
        yield StoreTimeline(store, clock)


async def test_events_after_many_gives_each_jobs_later_events_in_order(
    timeline: Timeline,
) -> None:
    done, open_, quiet = [await timeline.queued() for _ in range(3)]
    await timeline.canceled(done)
    found = await timeline.log.events_after_many({done: 0, open_: 0, quiet: 1, "nope": 0})
    assert {
        job: [(e.job_id, e.seq, e.type, e.data["status"]) for e in events]
        for job, events in found.items()
    } == {
        done: [(done, 1, "status", "queued"), (done, 2, "status", "canceled")],
        open_: [(open_, 1, "status", "queued")],
    }  # jobs with nothing after their seq, or no timeline, are left out
    assert await timeline.log.events_after_many({done: 1}) == {done: found[done][1:]}
    assert await timeline.log.events_after_many({}) == {}
