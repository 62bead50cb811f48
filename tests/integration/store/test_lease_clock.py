"""On PostgreSQL lease times come from the database's clock: gateways whose own clocks
disagree by minutes still agree on which lease ran out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from comfygate.clock import Clock
from comfygate.events.memory import MemoryBus
from comfygate.jobs.doorbell import Doorbell
from comfygate.jobs.model import JobStatus, WorkflowVersion
from comfygate.jobs.rescuer import Rescuer
from comfygate.jobs.worker_gate import LeaseTimes, WorkerGate
from comfygate.storage.local import LocalStorage
from comfygate.storage.signing import Signer
from comfygate.store import SqlJobStore, open_store
from tests.integration.store.helpers import W1, new_job

pytestmark = pytest.mark.postgres

SKEW_S = 300.0


class SkewedClock(Clock):
    """The system clock, off by ``skew_s``: a gateway whose NTP is broken."""

    def __init__(self, skew_s: float) -> None:
        self._skew = timedelta(seconds=skew_s)

    def now(self) -> datetime:
        return super().now() + self._skew


class Gateway:
    def __init__(self, store: SqlJobStore, clock: Clock, root: Path, ttl_s: float) -> None:
        blobs = LocalStorage(root, Signer(b"k" * 32, clock))
        bus, bell = MemoryBus(), Doorbell()
        self.gate = WorkerGate(
            store=store,
            blobs=blobs,
            events=bus,
            doorbell=bell,
            clock=clock,
            lease_times=LeaseTimes(ttl_s=ttl_s),
        )
        self.rescuer = Rescuer(store=store, blobs=blobs, events=bus, doorbell=bell, clock=clock)


@pytest.fixture
async def stores(pg_database: str) -> AsyncIterator[list[SqlJobStore]]:
    opened = [
        await open_store(pg_database, clock=clock)
        for clock in (SkewedClock(-SKEW_S), SkewedClock(SKEW_S))
    ]
    await opened[0].db.write(
        lambda conn: conn.execute(
            text("TRUNCATE job_events, job_attempts, jobs, lease_requests, pool_clocks CASCADE")
        )
    )
    await opened[0].save_workflow_version(
        WorkflowVersion(version="v1", name="wf", graph={}, contract={}, created_at=Clock().now())
    )
    try:
        yield opened
    finally:
        for s in opened:
            await s.close()


async def _lease_on(gw: Gateway) -> str:
    lease = await gw.gate.lease(W1, wait_s=0)
    assert lease is not None
    return lease.job_id


async def test_a_gateway_minutes_ahead_does_not_rescue_a_live_lease(
    stores: list[SqlJobStore], tmp_path: Path
) -> None:
    """The lease is taken by a gateway 5 minutes behind; the rescuer of one 5 minutes
    ahead sees it as live, and so does the lagging gateway's own rescuer."""
    behind = Gateway(stores[0], SkewedClock(-SKEW_S), tmp_path, ttl_s=30)
    ahead = Gateway(stores[1], SkewedClock(SKEW_S), tmp_path, ttl_s=30)
    job = await stores[0].create_job(new_job(), now=Clock().now())
    assert await _lease_on(behind) == job.id
    assert await ahead.rescuer.run_once() == []
    assert await behind.rescuer.run_once() == []
    # Heartbeats through either gateway keep it alive on the same clock.
    held = await stores[1].get_job(job.id)
    assert held is not None and held.status is JobStatus.RUNNING
    assert held.lease_token is not None


async def test_a_lease_that_ran_out_by_the_database_clock_is_rescued_anywhere(
    stores: list[SqlJobStore], tmp_path: Path
) -> None:
    """A gateway 5 minutes ahead leases for a second; once the database's clock passes
    that second, the rescuer of a gateway 5 minutes behind takes the job back."""
    ahead = Gateway(stores[1], SkewedClock(SKEW_S), tmp_path, ttl_s=1)
    behind = Gateway(stores[0], SkewedClock(-SKEW_S), tmp_path, ttl_s=1)
    job = await stores[1].create_job(new_job(), now=Clock().now())
    assert await _lease_on(ahead) == job.id
    rescued = []
    for _ in range(50):  # polled, not timed: the lease runs out when the database says
        rescued = await behind.rescuer.run_once()
        if rescued:
            break
        await asyncio.sleep(0.1)
    assert [j.id for j in rescued] == [job.id]
