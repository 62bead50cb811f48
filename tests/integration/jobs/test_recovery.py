"""A gateway killed with SIGKILL: at the next start its running jobs are reconciled
with their backend by prompt id before anything is retried."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfygate.comfy.client import ComfyClient
from comfygate.serve import spawn_gateway
from comfygate.sim import SimServer
from tests.integration.conftest import SimFactory
from tests.wait import eventually

# Each runs real processes through kills and restarts: tens of seconds on a busy machine.
pytestmark = pytest.mark.timeout(180)

Spawn = Callable[[SimServer], Awaitable[tuple[subprocess.Popen[bytes], str]]]
CHAOS_ENV = {
    "COMFYGATE_LEASE__TTL_S": "6",
    "COMFYGATE_LEASE__HEARTBEAT_S": "2",
    "COMFYGATE_LEASE__RESCUE_EVERY_S": "1",
}


@pytest.fixture
def spawn(tmp_path: Path, workflows_dir: Path) -> Iterator[Spawn]:
    procs: list[subprocess.Popen[bytes]] = []

    async def start(sim: SimServer) -> tuple[subprocess.Popen[bytes], str]:
        # In a thread: the simulator runs on this test's event loop and must answer.
        proc, url = await asyncio.to_thread(
            spawn_gateway, tmp_path / "gw", workflows_dir, [sim.url], env=CHAOS_ENV
        )
        procs.append(proc)
        return proc, url

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
async def slow_sim(start_sim: SimFactory) -> AsyncIterator[SimServer]:
    yield await start_sim(step_ms=100)


def signal_and_wait(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    os.kill(proc.pid, sig)
    proc.wait()


async def poll(url: str, job_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        for _ in range(600):
            job: dict[str, Any] = (await c.get(f"/v1/jobs/{job_id}")).json()
            if done(job):
                return job
            await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never got there: {job}")


async def running_job(url: str) -> tuple[str, str]:
    """Submit a 2-second job and wait until its prompt is running; (job id, prompt id)."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        r = await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 20}})
        job_id = r.json()["id"]
        await poll(url, job_id, lambda j: (j["progress"]["step"] or 0) >= 2)
        attempts = (await c.get(f"/v1/jobs/{job_id}/attempts")).json()["attempts"]
    return job_id, attempts[-1]["prompt_id"]


def prompts_posted(sim: SimServer) -> int:
    return sum(1 for method, path, _ in sim.log if method == "POST" and path == "/prompt")


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "canceled", "expired")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
async def test_a_prompt_still_running_is_followed_again(
    slow_sim: SimServer, spawn: Spawn, sig: int
) -> None:
    """A crash, or a stop: either way the prompt runs on at the backend and the next
    start follows it to the end instead of running it twice."""
    proc, url = await spawn(slow_sim)
    job_id, _ = await running_job(url)
    signal_and_wait(proc, sig)
    _, url = await spawn(slow_sim)
    job = await poll(url, job_id, finished)
    assert job["status"] == "succeeded" and job["attempts"] == 1 and job["outputs"]
    assert prompts_posted(slow_sim) == 1  # followed, not run twice


async def test_a_prompt_that_finished_while_the_gateway_was_down_is_collected(
    slow_sim: SimServer, spawn: Spawn
) -> None:
    proc, url = await spawn(slow_sim)
    job_id, prompt_id = await running_job(url)
    signal_and_wait(proc)
    comfy = ComfyClient(slow_sim.url)
    try:
        await eventually(
            lambda: comfy.prompt_state(prompt_id),
            lambda state: state == "done",
            f"prompt {prompt_id} to finish in ComfyUI",
        )
    finally:
        await comfy.aclose()
    _, url = await spawn(slow_sim)
    job = await poll(url, job_id, finished)
    assert job["status"] == "succeeded" and job["attempts"] == 1 and job["outputs"]
    async with httpx.AsyncClient(base_url=url) as c:
        for output in job["outputs"]:
            assert (await c.get(output["url"])).status_code == 200
    assert prompts_posted(slow_sim) == 1


async def test_a_prompt_the_restarted_backend_forgot_is_run_again(
    slow_sim: SimServer, spawn: Spawn
) -> None:
    proc, url = await spawn(slow_sim)
    job_id, _ = await running_job(url)
    signal_and_wait(proc)
    await slow_sim.restart()  # ComfyUI restarts empty: no queue, no history
    _, url = await spawn(slow_sim)
    job = await poll(url, job_id, finished)
    assert job["status"] == "succeeded" and job["attempts"] == 2
    async with httpx.AsyncClient(base_url=url) as c:
        attempts = (await c.get(f"/v1/jobs/{job_id}/attempts")).json()["attempts"]
    assert attempts[0]["outcome"] == "backend_restarted"
