"""A gateway process killed with SIGKILL while it sends a webhook: the delivery was
committed with the job, so the next gateway sends it again, with the same webhook-id."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from comfygate.serve import spawn_gateway
from tests.integration.conftest import SimFactory
from tests.integration.receiver import Receiver

# Each runs real processes through kills and restarts: tens of seconds on a busy machine.
pytestmark = pytest.mark.timeout(180)

ENV = {"COMFYGATE_OUTBOUND__ALLOW": "127.0.0.1", "COMFYGATE_WEBHOOKS__TIMEOUT_S": "3"}


async def test_a_delivery_cut_short_by_kill_9_is_sent_by_the_next_gateway(
    start_sim: SimFactory, tmp_path: Path, workflows_dir: Path
) -> None:
    sim = await start_sim()
    receiver = Receiver(hold={"/hook"})
    await receiver.start()
    data = tmp_path / "gw"
    proc, url = await asyncio.to_thread(spawn_gateway, data, workflows_dir, [sim.url], env=ENV)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            r = await c.post(
                "/v1/workflows/image-ops/jobs",
                json={"params": {"width": 16}, "webhook": {"url": f"{receiver.url}/hook"}},
            )
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            secret = (await c.get("/v1/webhooks/secret")).json()["secret"]
        [first] = await receiver.wait_for("/hook")
        os.kill(proc.pid, signal.SIGKILL)  # the receiver has the request, no answer yet
        await asyncio.to_thread(proc.wait)
        receiver.hold.clear()
        proc, url = await asyncio.to_thread(spawn_gateway, data, workflows_dir, [sim.url], env=ENV)
        _, second = await receiver.wait_for("/hook", 2, within_s=30)
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            for _ in range(100):
                [delivery] = (await c.get(f"/v1/jobs/{job_id}/webhooks")).json()["deliveries"]
                if delivery["status"] == "delivered":
                    break
                await asyncio.sleep(0.1)
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait)
        await receiver.stop()
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == delivery["id"]
    payload = Webhook(secret).verify(second.body, second.headers)
    assert payload["type"] == "job.succeeded" and payload["data"]["id"] == job_id
    assert delivery["status"] == "delivered"
    assert [(a["attempt"], a["status_code"]) for a in delivery["attempts"]] == [(2, 200)]
