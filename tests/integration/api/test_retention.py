"""Deletion and retention, through the API: tombstones, 410s, and the sweep."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from comfygate.clock import FakeClock
from comfygate.jobs.ports import Blobs
from comfygate.jobs.sweeper import Retention, Sweeper
from comfygate.sim import SimServer
from tests.integration.conftest import RunningGateway, wait_status


async def run_job(gateway: RunningGateway) -> dict[str, object]:
    async with gateway.client() as c:
        job = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        return await wait_status(c, job["id"], "succeeded")


async def test_delete_removes_files_and_keeps_a_tombstone(gateway: RunningGateway) -> None:
    job = await run_job(gateway)
    job_id = str(job["id"])
    storage = gateway.gw.storage
    assert await storage.list(f"outputs/{job_id}") and await storage.list(f"jobs/{job_id}")
    async with gateway.client() as c:
        output_url = job["outputs"][0]["url"]  # type: ignore[index]
        assert (await c.delete(f"/v1/jobs/{job_id}")).status_code == 204
        gone = await c.get(f"/v1/jobs/{job_id}")
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "job_deleted"
        expired = await c.get(output_url)
        assert expired.status_code == 410 and expired.json()["error"]["code"] == "output_expired"
        assert job_id not in [j["id"] for j in (await c.get("/v1/jobs")).json()["jobs"]]
        assert (await c.delete(f"/v1/jobs/{job_id}")).status_code == 410
    assert await storage.list(f"outputs/{job_id}") == []
    assert await storage.list(f"jobs/{job_id}") == []
    tombstone = await gateway.gw.store.get_job(job_id)
    assert tombstone is not None and tombstone.deleted_at is not None
    assert tombstone.params == {} and tombstone.status.value == "succeeded"
    assert await gateway.gw.store.events_after(job_id, 0) == []


async def test_a_running_job_cannot_be_deleted(gateway: RunningGateway, sim: SimServer) -> None:
    async with gateway.client() as c:
        job = (await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 50}})).json()
        await wait_status(c, job["id"], "running")
        r = await c.delete(f"/v1/jobs/{job['id']}")
        assert r.status_code == 409 and "cancel" in r.json()["error"]["message"]
        await c.post(f"/v1/jobs/{job['id']}/cancel")


async def test_the_sweep_expires_old_outputs_and_drops_unused_uploads(
    gateway: RunningGateway,
) -> None:
    from tests.images import png

    job = await run_job(gateway)
    job_id = str(job["id"])
    async with gateway.client() as c:
        upload = (
            await c.post(
                "/v1/uploads", json={"filename": "a.png", "content_type": "image/png", "bytes": 90}
            )
        ).json()
        await c.put(upload["upload"]["url"], content=png(), headers=upload["upload"]["headers"])
        await c.post(f"/v1/uploads/{upload['id']}/complete")
    gw = gateway.gw
    # Eight days later, with every retention at its default.
    later = FakeClock(gw.clock.now() + timedelta(days=8))
    sweeper = Sweeper(store=gw.store, blobs=gw.storage, clock=later, retention=Retention())
    report = await sweeper.run_once()
    assert report.expired_outputs == 1 and report.unused_uploads == 1
    assert await gw.storage.list(f"outputs/{job_id}") == []
    assert await gw.storage.list(f"inputs/{upload['id']}") == []
    async with gateway.client() as c:
        again = (await c.get(f"/v1/jobs/{job_id}")).json()
        assert again["outputs_expired_at"] is not None
        r = await c.get(again["outputs"][0]["url"])
        assert r.status_code == 410 and r.json()["error"]["code"] == "output_expired"


async def test_a_manifest_lost_to_a_crash_is_written_again(gateway: RunningGateway) -> None:
    job = await run_job(gateway)
    storage, key = gateway.gw.storage, f"jobs/{job['id']}/output.json"
    written = await storage.get_bytes(key)
    await storage.delete(key)  # as if the gateway died between the commit and the write
    since = gateway.gw.clock.now() - timedelta(hours=1)
    assert await gateway.gw.sweeper.repair_manifests(since=since) == 1
    assert await storage.get_bytes(key) == written
    assert await gateway.gw.sweeper.repair_manifests(since=since) == 0


async def test_the_sweep_drops_multipart_uploads_open_for_a_day(gateway: RunningGateway) -> None:
    asked: list[tuple[str, datetime]] = []

    class Storage:
        """The gateway's storage, noting what the sweep asks to abort."""

        def __getattr__(self, name: str) -> Any:
            return getattr(gateway.gw.storage, name)

        async def abort_open_parts(self, prefix: str, *, begun_before: datetime) -> int:
            asked.append((prefix, begun_before))
            return 1

    later = FakeClock(gateway.gw.clock.now() + timedelta(days=2))
    sweeper = Sweeper(
        store=gateway.gw.store, blobs=cast(Blobs, Storage()), clock=later, retention=Retention()
    )
    report = await sweeper.run_once()
    assert report.open_parts == 1
    assert asked == [("outputs/", later.now() - timedelta(days=1))]
