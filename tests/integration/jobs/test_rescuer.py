"""Leases that run out: a stalled agent is fenced out and its job runs again."""

from __future__ import annotations

import asyncio

import pytest

from comfygate.jobs.model import HeartbeatReply, Lease
from tests.integration.conftest import GatewayFactory, SimFactory, wait_status

# Each waits out leases that run dry: tens of seconds on a busy machine.
pytestmark = pytest.mark.timeout(180)

CHAOS_LEASE = {"ttl_s": 6, "heartbeat_s": 2, "rescue_every_s": 1}


async def test_a_stalled_agent_loses_its_lease_and_the_job_runs_again(
    start_sim: SimFactory, start_gateway: GatewayFactory
) -> None:
    slow_sim = await start_sim(step_ms=150)
    rg = await start_gateway(slow_sim.url, lease=CHAOS_LEASE)
    real_heartbeat = rg.gw.gate.heartbeat
    never = asyncio.Event()

    async def stalled_first_attempt(lease: Lease) -> HeartbeatReply:
        if lease.attempt == 1:  # a partitioned agent: its beats never arrive
            await never.wait()
        return await real_heartbeat(lease)

    rg.gw.gate.heartbeat = stalled_first_attempt  # type: ignore[method-assign]
    async with rg.client() as c:
        r = await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 50}})
        job_id = r.json()["id"]
        job = await wait_status(c, job_id, "succeeded", "failed", within_s=40)
        attempts = (await c.get(f"/v1/jobs/{job_id}/attempts")).json()["attempts"]

    assert job["status"] == "succeeded" and job["attempts"] == 2
    assert [a["outcome"] for a in attempts] == ["lease_expired", "succeeded"]
    # The stale agent stopped its own prompt, and nothing of attempt 1 was published.
    interrupts = [body for _, path, body in slow_sim.log if path == "/interrupt"]
    assert {"prompt_id": attempts[0]["prompt_id"]} in interrupts
    assert job["outputs"] and all(
        f"/outputs/{job_id}/main/2/" in o["url"] for o in job["outputs"]
    ), job["outputs"]
    statuses = [
        e.data["status"] for e in (await rg.gw.store.events_after(job_id, 0)) if e.type == "status"
    ]
    assert statuses == ["queued", "running", "queued", "running", "succeeded"]
