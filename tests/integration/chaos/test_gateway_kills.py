"""The gateway killed with SIGKILL again and again under a few hundred jobs on several
backends: every job ends succeeded, each output in its manifest once, and after the
sweep no object outside it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfygate.config import load_settings
from comfygate.gateway import build_gateway
from comfygate.serve import spawn_gateway
from tests.integration.chaos.tally import TERMINAL, tally
from tests.integration.conftest import SimFactory

# Each runs real processes through kills and restarts: tens of seconds on a busy machine.
pytestmark = pytest.mark.timeout(180)

JOBS = 200
KILLS = 3
CHAOS_ENV = {
    "COMFYGATE_LEASE__TTL_S": "6",
    "COMFYGATE_LEASE__HEARTBEAT_S": "2",
    "COMFYGATE_LEASE__RESCUE_EVERY_S": "1",
}


async def spawn(
    data: Path, workflows: Path, sims: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    # In a thread: the simulators run on this test's event loop and must keep answering.
    return await asyncio.to_thread(spawn_gateway, data, workflows, sims, env=CHAOS_ENV)


async def test_kill_9_the_gateway_several_times_under_load(
    start_sim: SimFactory,
    tmp_path: Path,
    workflows_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sims = [(await start_sim(step_ms=25)).url for _ in range(3)]
    data = tmp_path / "gw"
    proc, url = await spawn(data, workflows_dir, sims)
    ids: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            for n in range(JOBS):
                r = await c.post(
                    "/v1/workflows/txt2img/jobs", json={"params": {"steps": 3, "seed": n}}
                )
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
        for _ in range(KILLS):
            await asyncio.sleep(2.0)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc, url = await spawn(data, workflows_dir, sims)
        jobs = await wait_all(url, ids, within_s=180)
    finally:
        proc.kill()
        proc.wait()

    gw = await build_gateway(load_settings(None, data_dir=data, workflows_dir=workflows_dir))
    try:
        await gw.sweeper.run_once(settle_s=0)
        result = await tally(jobs, gw.storage)
    finally:
        await gw.stop()
    with capsys.disabled():
        print("\n" + result.line(f"gateway kill -9 x{KILLS}"))
    assert result.lost == [] and result.duplicated == []
    assert result.statuses["succeeded"] == JOBS, result.line("gateway kills")


async def wait_all(url: str, ids: list[str], *, within_s: float) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    done: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        while loop.time() < deadline:
            for job_id in ids:
                if job_id not in done:
                    job = (await c.get(f"/v1/jobs/{job_id}")).json()
                    if job["status"] in TERMINAL:
                        done[job_id] = job
            if len(done) == len(ids):
                break
            await asyncio.sleep(0.5)
        return [done.get(i) or (await c.get(f"/v1/jobs/{i}")).json() for i in ids]
