"""Outputs fetched as their nodes report them, while the rest of the graph runs."""

from __future__ import annotations

import asyncio
import hashlib

from comfygate.sim import SimServer
from tests.integration.conftest import RunningGateway, wait_status


async def test_an_early_output_is_stored_while_the_graph_still_runs(
    gateway: RunningGateway, sim: SimServer
) -> None:
    # "First" saves a swatch at once; "Final" waits on 40 sampler steps of 20 ms.
    async with gateway.client() as c:
        r = await c.post("/v1/workflows/two-saves/jobs", json={"params": {"steps": 40}})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        first = gateway.settings.storage_dir / f"outputs/{job_id}/main/1/2-0.png"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not first.exists():
            assert loop.time() < deadline, "the early output never arrived"
            await asyncio.sleep(0.01)
        assert (await c.get(f"/v1/jobs/{job_id}")).json()["status"] == "running"

        done = await wait_status(c, job_id, "succeeded", "failed")
        assert done["status"] == "succeeded", done
        bodies = {a["node_id"]: (await c.get(a["url"])).content for a in done["outputs"]}
    # each output once, as /history lists them, byte for byte what the backend saved
    assert [a["node_id"] for a in done["outputs"]] == ["2", "9"]
    saved = {
        p.name.split("_")[0]: p.read_bytes()
        for p in (sim.config.output_dir / "comfygate" / job_id).rglob("*.png")
    }
    assert bodies == {"2": saved["first"], "9": saved["final"]}
    assert [a["sha256"] for a in done["outputs"]] == [
        hashlib.sha256(bodies[n]).hexdigest() for n in ("2", "9")
    ]
