"""The dashboard's overview against the real gateway and the simulator."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx

from comfygate.admin.backends import ComfyProber
from comfygate.clock import Clock
from comfygate.serve import free_port
from comfygate.sim import SimServer
from tests.integration.api.helpers import admin
from tests.integration.conftest import GatewayFactory, RunningGateway, wait_status


async def backends_until(
    c: httpx.AsyncClient, ok: Any, within_s: float = 20
) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        r = await c.get("/v1/admin/backends")
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["backends"]
        if ok(found):
            return found
        if loop.time() > deadline:
            raise AssertionError(f"backends never matched: {found}")
        await asyncio.sleep(0.1)


async def test_backends_show_state_queue_and_memory(
    gateway: RunningGateway, sim: SimServer
) -> None:
    async with admin(gateway) as c:
        [b] = await backends_until(c, lambda bs: bs[0]["state"] == "idle")
        assert b["id"] == "local-0" and b["pool"] == "default" and b["url"] == sim.url
        assert b["connected"] is True and b["current_jobs"] == [] and b["error"] is None
        assert b["queue"] == {"running": 0, "pending": 0, "length": 0}
        # What its agent reports when it asks for work: pools, free slots, models.
        [b] = await backends_until(c, lambda bs: bs[0]["lessee"] is not None)
        assert b["lessee"]["pools"] == ["default"] and b["lessee"]["capacity"] >= 1
        assert "sim-sd15.safetensors" in b["lessee"]["models"]
        system = b["system"]
        assert system["vram_total"] > 0 and 0 <= system["vram_free"] <= system["vram_total"]
        assert system["ram_total"] > 0 and system["comfyui_version"]
        assert b["checked_at"]

        job = (await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 50}})).json()
        [busy] = await backends_until(c, lambda bs: job["id"] in bs[0]["current_jobs"])
        assert busy["state"] == "busy"
        await c.post(f"/v1/admin/jobs/{job['id']}/cancel")


async def test_a_backend_that_is_down_shows_unreachable(
    sim: SimServer, start_gateway: GatewayFactory
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = await start_gateway(sim.url, f"gpu={dead}")
    async with admin(gateway) as c:
        found = await backends_until(
            c, lambda bs: [b["state"] for b in bs] == ["idle", "unreachable"]
        )
        down = found[1]
        assert down["pool"] == "gpu" and down["url"] == dead
        assert down["queue"] is None and down["system"] is None
        assert down["error"] and down["connected"] is False
        stats = (await c.get("/v1/admin/stats")).json()
        gpu = next(p for p in stats["pools"] if p["pool"] == "gpu")
        assert gpu["backends"] == 1 and gpu["backends_connected"] == 0


async def test_stats_move_after_jobs(gateway: RunningGateway) -> None:
    async with admin(gateway) as c:
        before = (await c.get("/v1/admin/stats")).json()
        assert len(before["throughput"]["buckets"]) == 60
        assert before["throughput"]["bucket_s"] == 60
        assert before["totals"]["finished_last_hour"] == 0
        default = next(p for p in before["pools"] if p["pool"] == "default")
        assert default["backends"] == 1

        ids = []
        for _ in range(2):
            r = await c.post("/v1/workflows/image-ops/jobs", json={"params": {"width": 16}})
            ids.append(r.json()["id"])
        for job_id in ids:
            await wait_status(c, job_id, "succeeded", "failed")
        after = (await c.get("/v1/admin/stats")).json()
        totals = after["totals"]
        assert totals["succeeded_last_hour"] == 2 and totals["finished_last_hour"] == 2
        assert sum(b["succeeded"] for b in after["throughput"]["buckets"]) == 2
        assert after["totals"]["queued"] == 0 and after["totals"]["running"] == 0
        assert after["db_statements"] > before["db_statements"]


async def test_stats_count_queued_jobs_of_a_pool_without_backends(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway()
    async with admin(gateway) as c:
        for _ in range(2):
            await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})
        stats = (await c.get("/v1/admin/stats")).json()
        default = next(p for p in stats["pools"] if p["pool"] == "default")
        assert default == {
            "pool": "default",
            "queued": 2,
            "running": 0,
            "backends": 0,
            "backends_connected": 0,
        }
        assert stats["totals"]["queued"] == 2
        assert (await c.get("/v1/admin/backends")).json() == {"backends": [], "remote": []}


async def test_a_backend_that_hangs_is_unreachable_after_the_timeout(sim: SimServer) -> None:
    release = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # accept, then never answer
        await release.wait()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # Long enough for a live backend on a busy machine: the same prober answers for it.
    prober = ComfyProber(Clock(), timeout_s=1.0)
    try:
        slow = await asyncio.wait_for(prober(f"http://127.0.0.1:{port}"), 10)
        assert slow.error and slow.queue is None and slow.stats is None
        ok = await prober(sim.url)
        assert ok.error is None and ok.stats is not None and ok.queue is not None
    finally:
        await prober.aclose()
        release.set()
        server.close()
        await server.wait_closed()


async def test_a_drained_backend_finishes_its_job_and_takes_no_new_one(
    gateway: RunningGateway,
) -> None:
    async with admin(gateway) as c:
        await backends_until(c, lambda bs: bs[0]["state"] == "idle")
        first = (await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 10}})).json()
        await wait_status(c, first["id"], "running")
        drained = await c.post("/v1/admin/backends/local-0/drain")
        assert drained.status_code == 202 and drained.json()["state"] == "draining"
        assert drained.json()["draining"] is True
        second = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        await wait_status(c, first["id"], "succeeded")
        await backends_until(c, lambda bs: bs[0]["current_jobs"] == [])
        assert (await c.get(f"/v1/jobs/{second['id']}")).json()["status"] == "queued"
        resumed_at = gateway.gw.clock.now()
        resumed = await c.post("/v1/admin/backends/local-0/resume")
        assert resumed.status_code == 202 and resumed.json()["state"] != "draining"
        assert resumed.json()["draining"] is False
        await wait_status(c, second["id"], "succeeded")
        # No lease while drained, however late the look above came: its one attempt
        # began after the resume.
        [attempt] = (await c.get(f"/v1/jobs/{second['id']}/attempts")).json()["attempts"]
        assert datetime.fromisoformat(attempt["started_at"]) >= resumed_at
        assert (await c.post("/v1/admin/backends/nope/drain")).status_code == 404
