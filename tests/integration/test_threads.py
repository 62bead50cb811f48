"""A gateway whose database and storage threads retired after a burst answers the next
request at once."""

from __future__ import annotations

import asyncio

import pytest

from comfygate import threads
from comfygate.sim import SimServer
from tests.integration.conftest import GatewayFactory, wait_status

IDLE_S = 0.3


async def test_a_submit_after_a_burst_and_a_quiet_longer_than_the_idle_time_is_answered(
    monkeypatch: pytest.MonkeyPatch, sim: SimServer, start_gateway: GatewayFactory
) -> None:
    monkeypatch.setattr(threads, "IDLE_S", IDLE_S)
    gw = await start_gateway(sim.url)
    async with gw.client() as c:

        async def submit() -> str:
            r = await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})
            assert r.status_code == 202, r.text
            return str(r.json()["id"])

        ids = await asyncio.gather(*(submit() for _ in range(40)))
        for job_id in ids:
            await wait_status(c, job_id, "succeeded", within_s=60)
        # Quiet long enough for every storage and database thread to retire.
        await asyncio.sleep(IDLE_S * 4)
        job_id = await asyncio.wait_for(submit(), 5)
        job = await asyncio.wait_for(wait_status(c, job_id, "succeeded"), 10)
        assert job["outputs"]
        ready = await asyncio.wait_for(c.get("/readyz"), 5)
        assert ready.status_code == 200, ready.text
