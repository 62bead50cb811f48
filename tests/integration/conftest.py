"""Real servers on loopback: the simulator and the gateway, each on a free port."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from comfygate.api.app import create_app
from comfygate.config import Settings, load_settings
from comfygate.gateway import Gateway, build_gateway
from comfygate.serve import server_config
from comfygate.sim import SimConfig, SimServer
from tests.wait import serving

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
TEST_WORKFLOWS = ROOT / "tests" / "data" / "workflows"


@dataclass
class RunningGateway:
    url: str
    gw: Gateway
    settings: Settings
    server: uvicorn.Server
    task: asyncio.Task[None]

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kw)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


SimFactory = Callable[..., Awaitable[SimServer]]


@pytest.fixture
async def start_sim(tmp_path: Path) -> AsyncIterator[SimFactory]:
    """Simulators on free ports, each with its own data folder; all stopped at the end."""
    running: list[SimServer] = []

    async def start(**knobs: Any) -> SimServer:
        knobs.setdefault("step_ms", 20)
        server = SimServer(SimConfig(data_dir=tmp_path / f"sim-{len(running)}", **knobs))
        await server.start()
        running.append(server)
        return server

    yield start
    for server in running:
        await server.stop()


@pytest.fixture
async def sim(start_sim: SimFactory) -> SimServer:
    return await start_sim()


@pytest.fixture
def workflows_dir(tmp_path: Path) -> Path:
    """The example workflows plus the test-only ones, in a folder a test may edit."""
    target = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, target)
    for folder in TEST_WORKFLOWS.iterdir():
        shutil.copytree(folder, target / folder.name)
    return target


GatewayFactory = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def start_gateway(tmp_path: Path, workflows_dir: Path) -> AsyncIterator[GatewayFactory]:
    running: list[RunningGateway] = []

    async def start(*comfy: str, **overrides: Any) -> RunningGateway:
        overrides.setdefault("data_dir", tmp_path / "data")
        overrides.setdefault("workflows_dir", workflows_dir)
        build: dict[str, Any] = overrides.pop("build", {})  # build_gateway's test hooks
        # Most tests are about jobs, not identity: they run as the demo does. The
        # authorization tests (tests/integration/api/auth/) turn these off.
        overrides.setdefault("allow_anonymous", True)
        overrides.setdefault("public_site", True)
        settings = load_settings(None, comfy=list(comfy), port=0, **overrides)
        gw = await build_gateway(settings, **build)
        # Served as `comfygate serve` serves it, so uvicorn's settings are under test too.
        server = uvicorn.Server(server_config(create_app(gw), settings, port=0))
        task = asyncio.create_task(server.serve())
        port = await serving(server, task, "the gateway")
        rg = RunningGateway(f"http://127.0.0.1:{port}", gw, settings, server, task)
        running.append(rg)
        return rg

    yield start
    for rg in running:
        if not rg.task.done():
            await rg.stop()


@pytest.fixture
async def gateway(sim: SimServer, start_gateway: GatewayFactory) -> RunningGateway:
    return await start_gateway(sim.url)


async def wait_status(
    client: httpx.AsyncClient, job_id: str, *statuses: str, within_s: float = 20
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in statuses:
            return job
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} is {job['status']}, wanted {statuses}: {job}")
        await asyncio.sleep(0.02)


async def submit_and_lease(client: httpx.AsyncClient, worker: httpx.AsyncClient) -> dict[str, Any]:
    """A txt2img job submitted, then leased by hand through ``worker`` (a client with a
    worker key) for a backend that is not there: the lease's JSON."""
    submitted = await client.post("/v1/workflows/txt2img/jobs", json={"params": {}})
    assert submitted.status_code < 300, submitted.text
    body = {"request_id": uuid.uuid4().hex, "agent_id": "a", "backend": "http://g", "wait_s": 5}
    leased = await worker.post("/worker/v1/lease", json=body)
    assert leased.status_code == 200, leased.text
    lease: dict[str, Any] = leased.json()
    assert lease["job_id"] == submitted.json()["id"]
    return lease
