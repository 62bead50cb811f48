"""End to end: a gateway with no backend of its own, and a remote agent (HttpTransport,
no access to the gateway's storage) in front of a simulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from comfygate.comfy.session import open_session
from comfygate.sim import SimServer
from comfygate.worker.agent import Agent
from comfygate.worker.remote import build_remote_agent
from comfygate.worker.transport.http import HttpTransport
from tests.integration.conftest import GatewayFactory, RunningGateway, SimFactory, wait_status
from tests.wait import eventually

Running = tuple[Agent, HttpTransport, "asyncio.Task[None]"]


@pytest.fixture
async def remote(
    start_gateway: GatewayFactory,
) -> AsyncIterator[tuple[RunningGateway, str, Callable[[SimServer], Running]]]:
    rg = await start_gateway()
    _, secret = await rg.gw.api_keys.create("gpu-1", frozenset({"worker"}))
    http = open_session()
    started: list[Running] = []

    def start(sim: SimServer) -> Running:
        agent, transport = build_remote_agent(
            gateway=rg.url, token=secret, comfy=sim.url, pool="default", http=http
        )
        task = asyncio.create_task(agent.run())
        started.append((agent, transport, task))
        return agent, transport, task

    yield rg, secret, start
    for _, transport, task in started:
        await _kill(task)
        await transport.aclose()
    await http.close()


async def _kill(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_job_runs_on_a_remote_agent_and_its_outputs_download(
    remote: tuple[RunningGateway, str, Callable[[SimServer], Running]], start_sim: SimFactory
) -> None:
    rg, _, start = remote
    start(await start_sim())
    async with rg.client() as c:
        r = await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 4}})
        job = await wait_status(c, r.json()["id"], "succeeded", "failed", within_s=30)
        assert job["status"] == "succeeded", job
        assert job["outputs"]
        for output in job["outputs"]:
            got = await c.get(output["url"])
            assert got.status_code == 200 and len(got.content) == output["bytes"]
        ready = (await c.get("/readyz")).json()
        assert ready["checks"]["pool:default"] == "ok"
    # The agent told the gateway what its ComfyUI has (the simulator's checkpoints).
    [lessee] = rg.gw.gate.lessees()
    assert lessee.models is not None and "sim-sd15.safetensors" in lessee.models
    assert lessee.pools == ("default",) and lessee.capacity is not None


async def test_a_restarted_remote_agent_reattaches_to_its_running_job(
    remote: tuple[RunningGateway, str, Callable[[SimServer], Running]], start_sim: SimFactory
) -> None:
    rg, _, start = remote
    sim = await start_sim(step_ms=150)
    _, _, first = start(sim)
    async with rg.client() as c:
        r = await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 30}})
        job_id = r.json()["id"]
        await wait_status(c, job_id, "running")
        await eventually(
            lambda: c.get(f"/v1/jobs/{job_id}"),
            lambda r: r.json()["progress"]["value"] > 0,
            "the job's first progress",
        )
        await _kill(first)  # the agent process dies; its prompt runs on in ComfyUI
        start(sim)  # same token, same ComfyUI: adopts the lease at once
        job = await wait_status(c, job_id, "succeeded", "failed", within_s=20)
    # Well within one lease TTL (30 s), on the first attempt, with one prompt submitted.
    assert job["status"] == "succeeded" and job["attempts"] == 1, job
    prompts = [path for _, path, _ in sim.log if path == "/prompt"]
    assert len(prompts) == 1, prompts


async def test_a_remote_agent_gets_the_graph_with_its_lease_and_never_asks_for_it(
    remote: tuple[RunningGateway, str, Callable[[SimServer], Running]], start_sim: SimFactory
) -> None:
    rg, _, start = remote
    sim = await start_sim()
    _, transport, _ = start(sim)
    calls: list[str] = []
    send = transport.send

    async def recorded(method: str, path: str, **kw: Any) -> httpx.Response:
        calls.append(f"{method} {path}")
        return await send(method, path, **kw)

    transport.send = recorded  # type: ignore[method-assign]
    async with rg.client() as c:
        r = await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})
        job = await wait_status(c, r.json()["id"], "succeeded", "failed", within_s=30)
    assert job["status"] == "succeeded", job
    assert any(call.endswith("/complete") for call in calls), calls
    assert not [call for call in calls if call.endswith("/prompt")], calls
    # ... and ran the graph the gateway stored for the job
    [posted] = [body for method, path, body in sim.log if path == "/prompt" and method == "POST"]
    stored = json.loads(await rg.gw.storage.get_bytes(f"jobs/{job['id']}/prompt.json"))
    assert set(posted["prompt"]) == set(stored)
