"""The job path end to end: HTTP in, simulator behind, outputs back."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from comfygate.comfy.client import ComfyClient
from comfygate.ids import new_prompt_id
from comfygate.jobs.service import IN_FLIGHT_S
from comfygate.sim import SimServer
from tests.integration.conftest import ROOT, GatewayFactory, RunningGateway, SimFactory, wait_status
from tests.wait import eventually


async def test_job_succeeds_with_outputs_identical_to_what_the_backend_saved(
    gateway: RunningGateway, sim: SimServer
) -> None:
    async with gateway.client() as c:
        r = await c.post(
            "/v1/workflows/image-ops/jobs", json={"params": {"width": 32, "color": 255}}
        )
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] == "queued" and r.headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["urls"]["events"] == f"/v1/jobs/{job['id']}/events"
        done = await wait_status(c, job["id"], "succeeded", "failed")
        assert done["status"] == "succeeded", done
        assert done["progress"]["value"] == 1.0
        assert done["metrics"]["execution_ms"] is not None
        [asset] = done["outputs"]
        assert asset["kind"] == "image" and asset["content_type"] == "image/png"
        body = (await c.get(asset["url"])).content
    saved = list((sim.config.output_dir / "comfygate" / job["id"]).rglob("*.png"))
    assert len(saved) == 1
    assert body == saved[0].read_bytes()
    assert hashlib.sha256(body).hexdigest() == asset["sha256"]
    manifest = json.loads(
        (gateway.settings.storage_dir / f"jobs/{job['id']}/output.json").read_text()
    )
    assert [o["sha256"] for o in manifest["outputs"]] == [asset["sha256"]]
    request = json.loads(
        (gateway.settings.storage_dir / f"jobs/{job['id']}/request.json").read_text()
    )
    assert request["params"]["width"] == 32
    # the attempt's prompt id is the one ComfyUI ran
    async with gateway.client() as c:
        attempts = (await c.get(f"/v1/jobs/{job['id']}/attempts")).json()["attempts"]
    assert [a["outcome"] for a in attempts] == ["succeeded"]
    posted = [body for m, p, body in sim.log if p == "/prompt" and m == "POST"]
    assert posted[-1]["prompt_id"] == attempts[0]["prompt_id"]


async def test_node_error_fails_the_job_with_the_node_and_no_server_details(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as c:
        job = (await c.post("/v1/workflows/node-error/jobs", json={"params": {}})).json()
        done = await wait_status(c, job["id"], "failed", "succeeded")
    assert done["status"] == "failed"
    assert done["error"]["code"] == "prompt_rejected"
    assert "Traceback" not in json.dumps(done) and "/work/" not in json.dumps(done)
    error = json.loads((gateway.settings.storage_dir / f"jobs/{job['id']}/error.json").read_text())
    assert error["code"] == "prompt_rejected" and error["attempt"] == 1


async def test_invalid_params_name_each_field(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        r = await c.post(
            "/v1/workflows/image-ops/jobs",
            json={"params": {"width": 0, "color": "red", "bogus": 1}},
        )
        assert r.status_code == 422
        details = r.json()["error"]["details"]
        assert {d["path"] for d in details} >= {"/width", "/color"}
        assert all({"path", "message", "keyword"} <= set(d) for d in details)
        assert (await c.post("/v1/workflows/nope/jobs", json={"params": {}})).status_code == 404
        bad = await c.post(
            "/v1/workflows/image-ops/jobs",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_params"
        assert (await c.get("/v1/jobs/not-a-uuid")).status_code == 404
        listing = (await c.get("/v1/jobs?status=bogus")).json()
        assert listing["error"]["details"][0]["path"] == "/status"


async def test_cancel_while_queued_never_reaches_the_backend(
    gateway: RunningGateway, sim: SimServer
) -> None:
    [agent] = gateway.gw.agents
    agent.drain()  # a backend is attached but takes nothing yet: the job stays queued
    async with gateway.client() as c:
        job = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        r = await c.post(f"/v1/jobs/{job['id']}/cancel")
        assert r.status_code == 202 and r.json()["status"] == "canceled"
        again = await c.post(f"/v1/jobs/{job['id']}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"
        agent.resume()
        # A sentinel queued after it: jobs are claimed oldest first, so once the
        # sentinel is done the backend has had its chance at the canceled job.
        sentinel = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        assert (await wait_status(c, sentinel["id"], "succeeded", "failed"))[
            "status"
        ] == "succeeded"
        assert (await c.get(f"/v1/jobs/{job['id']}/attempts")).json()["attempts"] == []
    sent = [b["extra_data"]["comfygate_job"] for m, p, b in sim.log if p == "/prompt"]
    assert sent == [sentinel["id"]]


async def test_cancel_while_running_interrupts_that_prompt(
    start_sim: SimFactory, start_gateway: GatewayFactory
) -> None:
    sim = await start_sim(step_ms=100)  # 50 steps: 5 s, far from a race with the finish
    gateway = await start_gateway(sim.url)
    comfy = ComfyClient(sim.url)
    async with gateway.client() as c:
        job = (
            await c.post(
                "/v1/workflows/txt2img/jobs", json={"params": {"prompt": "slow", "steps": 50}}
            )
        ).json()
        running = await wait_status(c, job["id"], "running")
        assert running["attempts"] == 1
        prompt_id = (await c.get(f"/v1/jobs/{job['id']}/attempts")).json()["attempts"][0][
            "prompt_id"
        ]
        # Until ComfyUI runs it, not merely holds it in its queue.
        await eventually(
            lambda: comfy.prompt_state(prompt_id),
            lambda state: state == "running",
            f"ComfyUI to run prompt {prompt_id}",
        )
        await comfy.aclose()
        r = await c.post(f"/v1/jobs/{job['id']}/cancel")
        assert r.json()["status"] in ("canceling", "canceled")
        done = await wait_status(c, job["id"], "canceled", "succeeded", "failed")
        assert done["status"] == "canceled"
    interrupts = [b for m, p, b in sim.log if p == "/interrupt"]
    assert {"prompt_id": prompt_id} in interrupts


async def test_cancel_while_pending_on_the_backend_deletes_it_from_comfy_queue(
    gateway: RunningGateway, sim: SimServer
) -> None:
    """A prompt still pending in ComfyUI's own queue is removed with /queue delete."""
    blocker = json.loads((ROOT / "workflows/txt2img/workflow.api.json").read_text())
    blocker["3"]["inputs"]["steps"] = 50  # someone else's long prompt holds the backend
    comfy = ComfyClient(sim.url)
    try:
        await comfy.submit(blocker, prompt_id=new_prompt_id())
        async with gateway.client() as c:
            job = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
            await wait_status(c, job["id"], "running")
            attempts = (await c.get(f"/v1/jobs/{job['id']}/attempts")).json()["attempts"]
            prompt_id = attempts[0]["prompt_id"]
            await eventually(
                comfy.queue,
                lambda queue: prompt_id in queue.pending,
                f"prompt {prompt_id} pending in ComfyUI's queue",
            )
            await c.post(f"/v1/jobs/{job['id']}/cancel")
            await wait_status(c, job["id"], "canceled")
    finally:
        await comfy.interrupt()
        await comfy.aclose()
    assert ("POST", "/queue", {"delete": [prompt_id]}) in sim.log


async def test_idempotency_replay_reuse_in_flight_and_concurrent(gateway: RunningGateway) -> None:
    body = {"params": {"width": 40}}
    async with gateway.client() as c:
        first = await c.post(
            "/v1/workflows/image-ops/jobs", json=body, headers={"Idempotency-Key": "k1"}
        )
        replay = await c.post(
            "/v1/workflows/image-ops/jobs", json=body, headers={"Idempotency-Key": "k1"}
        )
        assert first.status_code == replay.status_code == 202
        assert replay.json() == first.json() and replay.headers["idempotent-replayed"] == "true"
        reuse = await c.post(
            "/v1/workflows/image-ops/jobs",
            json={"params": {"width": 41}},
            headers={"Idempotency-Key": "k1"},
        )
        assert reuse.status_code == 422 and reuse.json()["error"]["code"] == "idempotency_key_reuse"

        store = gateway.gw.store
        await store.reserve_idempotency_key(
            owner_id="local", key="busy", fingerprint="x", now=gateway.gw.clock.now()
        )
        in_flight = await c.post(
            "/v1/workflows/image-ops/jobs", json=body, headers={"Idempotency-Key": "busy"}
        )
        assert in_flight.status_code == 409
        assert in_flight.json()["error"]["code"] == "idempotency_key_in_flight"

        # a refused request is not remembered: the key can be used again after a fix
        bad = await c.post(
            "/v1/workflows/image-ops/jobs",
            json={"params": {"width": -1}},
            headers={"Idempotency-Key": "k2"},
        )
        assert bad.status_code == 422
        ok = await c.post(
            "/v1/workflows/image-ops/jobs", json=body, headers={"Idempotency-Key": "k2"}
        )
        assert ok.status_code == 202

        results = await asyncio.gather(
            *[
                c.post(
                    "/v1/workflows/image-ops/jobs",
                    json={"params": {"width": 50}},
                    headers={"Idempotency-Key": "k3"},
                )
                for _ in range(10)
            ]
        )
        ids = {r.json()["id"] for r in results if r.status_code == 202}
        assert len(ids) == 1
        assert {r.status_code for r in results} <= {202, 409}
        jobs = (await c.get("/v1/jobs?limit=200")).json()["jobs"]
        assert sum(1 for j in jobs if j["params"]["width"] == 50) == 1


async def test_a_key_whose_request_died_with_its_gateway_is_answered_on_retry(
    gateway: RunningGateway,
) -> None:
    """kill -9 mid-submit leaves the key in flight: made no job yet, the key is taken
    over after a while; made the job already, the retry gets that job."""
    store, clock = gateway.gw.store, gateway.gw.clock
    body = {"params": {"width": 44}}
    async with gateway.client() as c:
        first = await c.post(
            "/v1/workflows/image-ops/jobs", json=body, headers={"Idempotency-Key": "made"}
        )
        seen = await store.reserve_idempotency_key(
            owner_id="local", key="made", fingerprint="-", now=clock.now()
        )
        assert seen is not None and seen.job_id == first.json()["id"]

        def unanswered(conn: Any) -> None:
            conn.execute(
                text(
                    "UPDATE idempotency_keys SET status_code = NULL, body = NULL WHERE key = 'made'"
                )
            )

        await store.db.write(unanswered)
        again = await c.post(
            "/v1/workflows/image-ops/jobs", json=body, headers={"Idempotency-Key": "made"}
        )
        assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]

        await store.reserve_idempotency_key(
            owner_id="local",
            key="none",
            fingerprint=seen.fingerprint,
            now=clock.now() - timedelta(seconds=IN_FLIGHT_S),
        )
        taken = await c.post(
            "/v1/workflows/image-ops/jobs", json=body, headers={"Idempotency-Key": "none"}
        )
        assert taken.status_code == 202 and "idempotent-replayed" not in taken.headers
        replay = await c.post(
            "/v1/workflows/image-ops/jobs", json=body, headers={"Idempotency-Key": "none"}
        )
        assert replay.json()["id"] == taken.json()["id"] != first.json()["id"]


async def test_upload_then_image_parameter(gateway: RunningGateway, sim: SimServer) -> None:
    from tests.images import png

    data = png(64, 48)
    async with gateway.client() as c:
        r = await c.post(
            "/v1/uploads",
            json={"filename": "me.png", "content_type": "image/png", "bytes": len(data)},
        )
        assert r.status_code == 201
        up = r.json()
        put = await c.request(
            up["upload"]["method"],
            up["upload"]["url"],
            content=data,
            headers=up["upload"]["headers"],
        )
        assert put.status_code == 204
        done = await c.post(f"/v1/uploads/{up['id']}/complete")
        assert done.status_code == 200
        assert (done.json()["width"], done.json()["height"]) == (64, 48)
        job = (
            await c.post(
                "/v1/workflows/img2img/jobs", json={"params": {"image": up["id"], "steps": 2}}
            )
        ).json()
        result = await wait_status(c, job["id"], "succeeded", "failed")
        assert result["status"] == "succeeded", result
        missing = await c.post(
            "/v1/workflows/img2img/jobs",
            json={"params": {"image": "0190e0f0-0000-7000-8000-000000000000"}},
        )
        assert (
            missing.status_code == 422 and missing.json()["error"]["details"][0]["path"] == "/image"
        )
        too_big = await c.request(
            "PUT", up["upload"]["url"], content=data + b"x", headers=up["upload"]["headers"]
        )
        assert too_big.status_code == 422
    uploads = [b for m, p, b in sim.log if p == "/upload/image"]
    assert uploads, "the agent sent the input to ComfyUI"


async def test_multipart_submit_takes_the_file_through_the_same_checks(
    gateway: RunningGateway,
) -> None:
    from tests.images import png

    async with gateway.client() as c:
        files: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
            ("params", (None, json.dumps({"params": {"steps": 2}}), "application/json")),
            ("image", ("a.png", png(), "image/png")),
        ]
        r = await c.post("/v1/workflows/img2img/jobs", files=files)
        assert r.status_code == 202, r.text
        assert (await wait_status(c, r.json()["id"], "succeeded", "failed"))[
            "status"
        ] == "succeeded"
        files[1] = ("image", ("a.png", b"not an image", "image/png"))
        bad = await c.post("/v1/workflows/img2img/jobs", files=files)
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["path"] == "/image"


async def test_an_edited_workflow_does_not_change_an_accepted_job(
    start_gateway: GatewayFactory, sim: SimServer, workflows_dir: Path
) -> None:
    first = await start_gateway()  # no backend yet
    async with first.client() as c:
        job = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
    await first.stop()
    graph_file = workflows_dir / "image-ops" / "workflow.api.json"
    graph = json.loads(graph_file.read_text())
    for node in graph.values():
        if node["class_type"] == "ImageInvert":
            node["class_type"] = "ImageBlur"
            node["inputs"].update({"blur_radius": 3, "sigma": 1.0})
    graph_file.write_text(json.dumps(graph))
    second = await start_gateway(sim.url)
    assert second.gw.workflows["image-ops"].version != job["workflow_version"]
    async with second.client() as c:
        done = await wait_status(c, job["id"], "succeeded", "failed")
    assert done["status"] == "succeeded" and done["workflow_version"] == job["workflow_version"]
    ran = [b["prompt"] for m, p, b in sim.log if p == "/prompt"][-1]
    assert "ImageInvert" in {n["class_type"] for n in ran.values()}
    assert "ImageBlur" not in {n["class_type"] for n in ran.values()}


async def test_a_full_queue_answers_429_with_retry_after_and_keeps_what_it_holds(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(max_queue_depth=2)  # no backend: jobs stay queued
    async with gateway.client() as c:
        held = [
            (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()["id"]
            for _ in range(2)
        ]
        refused = await c.post(
            "/v1/workflows/image-ops/jobs", json={"params": {}}, headers={"Idempotency-Key": "k"}
        )
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "queue_full"
        assert refused.headers["Retry-After"] == "60"  # nothing finished lately
        assert [(await c.get(f"/v1/jobs/{i}")).json()["status"] for i in held] == ["queued"] * 2
        # The refused job's documents were written first, then removed with it.
        folders = {o.key.split("/")[1] for o in await gateway.gw.storage.list("jobs")}
        assert folders == set(held)
        # The refusal is not remembered: once there is room the same key goes through.
        await c.post(f"/v1/jobs/{held[0]}/cancel")
        again = await c.post(
            "/v1/workflows/image-ops/jobs", json={"params": {}}, headers={"Idempotency-Key": "k"}
        )
        assert again.status_code == 202
