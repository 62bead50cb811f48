"""``comfygate worker`` as its own process: a job submitted to a gateway without
backends runs on the simulator behind it; SIGTERM ends it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

from tests.integration.conftest import GatewayFactory, SimFactory, wait_status


async def test_comfygate_worker_runs_jobs_for_a_gateway(
    start_gateway: GatewayFactory, start_sim: SimFactory
) -> None:
    sim = await start_sim()
    rg = await start_gateway()
    _, secret = await rg.gw.api_keys.create("gpu-1", frozenset({"worker"}))
    args = [sys.executable, "-m", "comfygate", "worker", "--gateway", rg.url]
    proc = await asyncio.create_subprocess_exec(
        *args,
        *("--token", secret, "--comfy", sim.url, "--pool", "default"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with rg.client() as c:
            r = await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 3}})
            job = await wait_status(c, r.json()["id"], "succeeded", "failed", within_s=40)
            assert job["status"] == "succeeded", job
            got = await c.get(job["outputs"][0]["url"])
            assert got.status_code == 200 and got.content
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
