"""Admin job operations against the real gateway and the simulator."""

from __future__ import annotations

import asyncio
import json

from comfygate.principal import Principal
from tests.integration.api.helpers import admin
from tests.integration.conftest import RunningGateway, wait_status
from tests.integration.sse import read_frames, terminal
from tests.wait import until

VISITOR = Principal(id="visitor-1", kind="visitor", scopes=frozenset({"jobs:read", "jobs:write"}))


async def submit_as(
    gateway: RunningGateway, who: Principal, workflow: str, **params: object
) -> str:
    done = await gateway.gw.service.submit(who, workflow, dict(params), {}, render=lambda j: {})
    assert done.job_id is not None
    return done.job_id


async def test_the_list_spans_owners_filters_and_pages(gateway: RunningGateway) -> None:
    async with gateway.client() as local, admin(gateway) as c:
        mine = (await local.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        theirs = await submit_as(gateway, VISITOR, "txt2img", steps=1)
        await wait_status(c, mine["id"], "succeeded")
        await wait_status(c, theirs, "succeeded")

        r = await c.get("/v1/admin/jobs")
        assert r.status_code == 200, r.text
        jobs = r.json()["jobs"]
        assert [(j["id"], j["owner_id"]) for j in jobs] == [
            (theirs, "visitor-1"),
            (mine["id"], "local"),
        ]
        assert jobs[0]["pool"] == "default"
        assert jobs[0]["urls"] == {
            "self": f"/v1/admin/jobs/{theirs}",
            "cancel": f"/v1/admin/jobs/{theirs}/cancel",
            "retry": f"/v1/admin/jobs/{theirs}/retry",
            "events": "/v1/admin/events",
            "owner": f"/v1/jobs/{theirs}",
        }
        # the visitor's own list is still just the local principal's
        assert [j["id"] for j in (await local.get("/v1/jobs")).json()["jobs"]] == [mine["id"]]

        async def ids(**query: str) -> list[str]:
            r = await c.get("/v1/admin/jobs", params=query)
            assert r.status_code == 200, r.text
            return [j["id"] for j in r.json()["jobs"]]

        assert await ids(owner="local") == [mine["id"]]
        assert await ids(workflow="txt2img") == [theirs]
        assert await ids(status="succeeded", pool="default") == [theirs, mine["id"]]
        assert await ids(status="failed") == []
        assert await ids(pool="gpu") == []
        page = (await c.get("/v1/admin/jobs", params={"limit": 1})).json()
        assert [j["id"] for j in page["jobs"]] == [theirs] and page["next_cursor"] == theirs
        assert await ids(cursor=page["next_cursor"]) == [mine["id"]]

        for query, path in [
            ({"status": "nope"}, "/status"),
            ({"cursor": "nope"}, "/cursor"),
            ({"limit": "0"}, "/limit"),
            ({"owner": "x" * 201}, "/owner"),
        ]:
            r = await c.get("/v1/admin/jobs", params=query)
            assert r.status_code == 422, (query, r.text)
            assert [d["path"] for d in r.json()["error"]["details"]] == [path]


async def test_a_job_with_its_timeline_and_attempts(gateway: RunningGateway) -> None:
    async with admin(gateway) as c:
        job_id = await submit_as(gateway, VISITOR, "image-ops")
        await wait_status(c, job_id, "succeeded")
        r = await c.get(f"/v1/admin/jobs/{job_id}")
        assert r.status_code == 200, r.text
        detail = r.json()
        assert detail["job"]["id"] == job_id and detail["job"]["owner_id"] == "visitor-1"
        timeline = detail["timeline"]
        assert [e["seq"] for e in timeline] == list(range(1, len(timeline) + 1))
        statuses = [e["data"]["status"] for e in timeline if e["type"] == "status"]
        assert statuses == ["queued", "running", "succeeded"]
        assert [e["type"] for e in timeline].count("output") == 1
        assert all(e["at"] for e in timeline)
        [attempt] = detail["attempts"]
        assert attempt["attempt"] == 1 and attempt["outcome"] == "succeeded"
        assert attempt["backend"] == gateway.settings.backends[0].url
        assert (await c.get("/v1/admin/jobs/not-a-uuid")).status_code == 404
        missing = await c.get("/v1/admin/jobs/018f0000-0000-7000-8000-000000000000")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_cancel_any_owners_job(gateway: RunningGateway) -> None:
    async with admin(gateway) as c:
        job_id = await submit_as(gateway, VISITOR, "txt2img", steps=50)
        await wait_status(c, job_id, "running")
        r = await c.post(f"/v1/admin/jobs/{job_id}/cancel")
        assert r.status_code == 202, r.text
        assert r.json()["status"] in ("canceling", "canceled")
        done = await wait_status(c, job_id, "canceled", "succeeded")
        assert done["status"] == "canceled"
        again = await c.post(f"/v1/admin/jobs/{job_id}/cancel")
        assert again.status_code == 409


async def test_retry_makes_a_new_job_that_succeeds_and_leaves_the_old_one(
    gateway: RunningGateway,
) -> None:
    async with admin(gateway) as c:
        old_id = await submit_as(gateway, VISITOR, "image-ops", width=24)
        await wait_status(c, old_id, "succeeded")
        before = (await c.get(f"/v1/admin/jobs/{old_id}")).json()
        # the retry runs the stored graph: the workflow folder is not needed any more
        gateway.gw.workflows.pop("image-ops")

        r = await c.post(f"/v1/admin/jobs/{old_id}/retry")
        assert r.status_code == 202, r.text
        new = r.json()
        assert new["id"] != old_id and new["retry_of"] == old_id
        assert r.headers["location"] == f"/v1/admin/jobs/{new['id']}"
        assert new["owner_id"] == "visitor-1" and new["status"] == "queued"
        assert new["workflow_version"] == before["job"]["workflow_version"]
        assert new["params"] == before["job"]["params"]
        done = await wait_status(c, new["id"], "succeeded", "failed")
        assert done["status"] == "succeeded", done

        after = (await c.get(f"/v1/admin/jobs/{old_id}")).json()
        keep = ("status", "attempts", "finished_at", "updated_at", "retry_of")
        assert {k: after["job"][k] for k in keep} == {k: before["job"][k] for k in keep}
        assert after["timeline"] == before["timeline"]
        storage = gateway.settings.storage_dir
        assert (storage / f"jobs/{new['id']}/prompt.json").read_bytes() == (
            storage / f"jobs/{old_id}/prompt.json"
        ).read_bytes()
        request = json.loads((storage / f"jobs/{new['id']}/request.json").read_text())
        assert request["retry_of"] == old_id and request["params"]["width"] == 24
        listed = (await c.get("/v1/admin/jobs", params={"owner": "visitor-1"})).json()["jobs"]
        assert [j["id"] for j in listed] == [new["id"], old_id]


async def test_retry_of_an_unfinished_job_is_a_409(gateway: RunningGateway) -> None:
    async with admin(gateway) as c:
        job_id = await submit_as(gateway, VISITOR, "txt2img", steps=50)
        for _ in range(2):  # queued (or just leased), then surely running
            r = await c.post(f"/v1/admin/jobs/{job_id}/retry")
            assert r.status_code == 409, r.text
            assert r.json()["error"]["code"] == "invalid_transition"
            await wait_status(c, job_id, "running")
        listed = (await c.get("/v1/admin/jobs")).json()["jobs"]
        assert [j["id"] for j in listed] == [job_id]
        await c.post(f"/v1/admin/jobs/{job_id}/cancel")
        assert (await c.post("/v1/admin/jobs/not-a-uuid/retry")).status_code == 404


async def test_the_admin_event_stream_carries_every_owners_status_changes(
    gateway: RunningGateway,
) -> None:
    # The gateway's own webhook dispatcher listens to every owner too: wait for one more.
    before = gateway.gw.bus.subscribers(None)
    async with admin(gateway) as c:
        reading = asyncio.create_task(
            read_frames(c, "/v1/admin/events", until=lambda fs: terminal(fs[-1:]))
        )
        await until(
            lambda: gateway.gw.bus.subscribers(None) > before,
            "the admin event stream to subscribe",
        )
        job_id = await submit_as(gateway, VISITOR, "image-ops")
        frames = await asyncio.wait_for(reading, 20)
    assert {f.type for f in frames} == {"status"}
    assert [f.data["status"] for f in frames] == ["queued", "running", "succeeded"]
    assert {(f.data["job_id"], f.data["owner_id"]) for f in frames} == {(job_id, "visitor-1")}
    assert [f.data["seq"] for f in frames] == sorted(f.data["seq"] for f in frames)


async def test_the_admin_event_stream_needs_the_admin(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        r = await c.get("/v1/admin/events")
        assert r.status_code == 401


async def test_an_admin_follows_another_owners_job_stream_live(gateway: RunningGateway) -> None:
    # 40 sampler steps of 20 ms: the stream opens while the job still runs, so its end
    # arrives live, through a subscription to the job's owner, not the admin.
    job_id = await submit_as(gateway, VISITOR, "txt2img", steps=40)
    async with admin(gateway) as c:
        await wait_status(c, job_id, "running")
        frames = await asyncio.wait_for(
            read_frames(c, f"/v1/jobs/{job_id}/events", until=terminal), 10
        )
    statuses = [f.data["status"] for f in frames if f.type == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert {f.data["id"] for f in frames if f.type == "status"} == {job_id}
