"""Agents free a backend's memory between jobs, by count or when memory runs low."""

from __future__ import annotations

from comfygate.sim import SimServer
from tests.integration.conftest import GatewayFactory, wait_status
from tests.wait import until


def frees(sim: SimServer) -> list[object]:
    return [body for _, path, body in sim.log if path == "/free"]


async def test_free_after_every_n_jobs(sim: SimServer, start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(sim.url, hygiene={"free_every_jobs": 2})
    async with gateway.client() as c:
        for _ in range(5):  # one after another: the backend is idle after each
            job = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
            await wait_status(c, job["id"], "succeeded")
    # The agent frees just after it has reported the job.
    await until(lambda: len(frees(sim)) >= 2, "two frees")
    assert frees(sim) == [{"unload_models": True, "free_memory": True}] * 2


async def test_free_when_memory_runs_low(sim: SimServer, start_gateway: GatewayFactory) -> None:
    # Every machine has less than all of its memory free: always "low".
    gateway = await start_gateway(sim.url, hygiene={"free_below_fraction": 1.0})
    async with gateway.client() as c:
        job = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        await wait_status(c, job["id"], "succeeded")
    await until(lambda: frees(sim), "a free")
    assert len(frees(sim)) == 1
