"""The worker protocol over HTTP against a real gateway on loopback, with no backend of
its own: the test plays the remote agent call by call."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from comfygate.errors import LeaseLost
from comfygate.jobs.model import JobStatus, Lease
from comfygate.worker.transport.http import HttpTransport
from comfygate.worker.transport.wire import (
    LEASE_HEADER,
    lease_from_dict,
    lease_to_dict,
    models_digest,
)
from tests.integration.conftest import GatewayFactory, RunningGateway, wait_status

BACKEND = "http://gpu-1.example:8188"


@pytest.fixture
async def rg(start_gateway: GatewayFactory) -> RunningGateway:
    return await start_gateway()  # no --comfy: only remote agents run jobs


@pytest.fixture
async def secret(rg: RunningGateway) -> str:
    _, secret = await rg.gw.api_keys.create("gpu-1", frozenset({"worker"}))
    return secret


@pytest.fixture
async def worker(rg: RunningGateway, secret: str) -> AsyncIterator[httpx.AsyncClient]:
    async with rg.client(headers={"authorization": f"Bearer {secret}"}) as c:
        yield c


async def _submit(rg: RunningGateway) -> str:
    async with rg.client() as c:
        r = await c.post("/v1/workflows/txt2img/jobs", json={"params": {}})
        assert r.status_code == 202, r.text
        job_id: str = r.json()["id"]
        return job_id


async def _lease(worker: httpx.AsyncClient, request_id: str = "r1", wait_s: float = 5) -> Any:
    return await worker.post(
        "/worker/v1/lease",
        json={"request_id": request_id, "agent_id": "a1", "backend": BACKEND, "wait_s": wait_s},
    )


async def test_worker_routes_need_a_live_worker_token(rg: RunningGateway, secret: str) -> None:
    async with rg.client() as anonymous:
        r = await anonymous.post("/worker/v1/lease", json={})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    [token] = await rg.gw.api_keys.list()
    assert await rg.gw.api_keys.revoke(token.id)
    async with rg.client(headers={"authorization": f"Bearer {secret}"}) as revoked:
        assert (await _lease(revoked, wait_s=0)).status_code == 401
        # Elsewhere too, a revoked worker token is refused rather than taken for "local".
        assert (await revoked.get("/v1/jobs")).status_code == 401


async def test_the_worker_routes_are_in_the_openapi_document(rg: RunningGateway) -> None:
    async with rg.client() as c:
        paths = (await c.get("/openapi.json")).json()["paths"]
    for path in ("/lease", "/adopt", "/jobs/{job_id}/heartbeat", "/jobs/{job_id}/complete"):
        assert "/worker/v1" + path in paths
    assert "put" in paths["/worker/v1/jobs/{job_id}/outputs/{name}"]


async def test_bad_lease_bodies_name_the_field(worker: httpx.AsyncClient) -> None:
    r = await worker.post("/worker/v1/lease", json={"agent_id": "a", "backend": BACKEND})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "/request_id"
    r = await _lease(worker, wait_s=60)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "/wait_s"


async def test_an_idle_lease_answers_204_and_a_retry_gets_the_same_lease(
    rg: RunningGateway, worker: httpx.AsyncClient
) -> None:
    assert (await _lease(worker, "idle", wait_s=0)).status_code == 204
    job_id = await _submit(rg)
    first = await _lease(worker, "r1")
    again = await _lease(worker, "r1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and first.json()["job_id"] == job_id
    # A new request id is a new lease call: the one job is taken already.
    assert (await _lease(worker, "r2", wait_s=0)).status_code == 204
    assert rg.gw.pool_available("default")  # the remote backend counts for readiness


async def test_a_lease_retried_against_another_gateway_returns_the_same_lease(
    rg: RunningGateway, worker: httpx.AsyncClient, secret: str, start_gateway: GatewayFactory
) -> None:
    """Two gateways over one database: the answer of gateway A is lost, the agent's
    retry (same request id) reaches gateway B and gets A's lease, not the other job."""
    other = await start_gateway()  # the same data directory: one database
    first_job = await _submit(rg)
    await _submit(rg)
    first = await _lease(worker, "lost-1")
    assert first.status_code == 200 and first.json()["job_id"] == first_job
    async with other.client(headers={"authorization": f"Bearer {secret}"}) as on_b:
        body = {"request_id": "lost-1", "agent_id": "a1", "backend": BACKEND, "wait_s": 0}
        again = await on_b.post("/worker/v1/lease", json={**body, "retry": True})
        assert again.status_code == 200
        assert again.json()["lease_token"] == first.json()["lease_token"]
    running = await rg.gw.store.list_jobs(owner_id=None, status=JobStatus.RUNNING)
    assert [j.id for j in running] == [first_job]


async def test_a_lease_names_pools_capacity_and_models_and_skips_jobs_it_cannot_run(
    rg: RunningGateway, worker: httpx.AsyncClient
) -> None:
    """txt2img names sim-sd15.safetensors: a backend without it is not offered the job;
    the gateway keeps what each backend reported."""
    job_id = await _submit(rg)
    body = {"agent_id": "a1", "backend": BACKEND, "pools": ["other", "default"], "capacity": 3}
    lacking = {**body, "request_id": "x1", "wait_s": 0, "models": ["sdxl.safetensors"]}
    assert (await worker.post("/worker/v1/lease", json=lacking)).status_code == 204
    [seen] = rg.gw.gate.lessees()
    assert seen.pools == ("other", "default") and seen.capacity == 3
    assert seen.models == frozenset({"sdxl.safetensors"})
    having = {**lacking, "request_id": "x2", "models": ["sim-sd15.safetensors", "vae.pt"]}
    r = await worker.post("/worker/v1/lease", json=having)
    assert r.status_code == 200 and r.json()["job_id"] == job_id
    bad = await worker.post("/worker/v1/lease", json={**having, "request_id": "x3", "pools": []})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["path"] == "/pools"


async def test_a_pool_bound_worker_token_may_not_name_other_pools(
    rg: RunningGateway,
) -> None:
    _, secret = await rg.gw.api_keys.create("gpu-2", frozenset({"worker"}), pool="default")
    async with rg.client(headers={"authorization": f"Bearer {secret}"}) as bound:
        body = {"request_id": "p", "agent_id": "a", "backend": BACKEND, "wait_s": 0}
        r = await bound.post("/worker/v1/lease", json={**body, "pools": ["default", "gpu"]})
        assert r.status_code == 403
        r = await bound.post("/worker/v1/lease", json={**body, "pools": ["default"]})
        assert r.status_code == 204


async def test_heartbeat_carries_the_cancel_flag(
    rg: RunningGateway, worker: httpx.AsyncClient
) -> None:
    job_id = await _submit(rg)
    lease = (await _lease(worker)).json()
    fenced = {"lease_token": lease["lease_token"]}
    beat = await worker.post(f"/worker/v1/jobs/{job_id}/heartbeat", json=fenced)
    assert beat.json() == {"cancel": False}
    async with rg.client() as c:
        assert (await c.post(f"/v1/jobs/{job_id}/cancel")).status_code == 202
        beat = await worker.post(f"/worker/v1/jobs/{job_id}/heartbeat", json=fenced)
        assert beat.json() == {"cancel": True}
        progress = {**fenced, "progress": {"value": 0.5}}
        assert (await worker.post(f"/worker/v1/jobs/{job_id}/progress", json=progress)).json()[
            "cancel"
        ]
        r = await worker.post(f"/worker/v1/jobs/{job_id}/canceled", json=fenced)
        assert r.status_code == 204
        await wait_status(c, job_id, "canceled")


async def test_a_rescued_lease_answers_409_lease_lost(
    rg: RunningGateway, worker: httpx.AsyncClient, secret: str
) -> None:
    job_id = await _submit(rg)
    lease = (await _lease(worker)).json()
    later = datetime.now(UTC) + timedelta(hours=1)
    [rescued] = await rg.gw.store.rescue_expired(now=later, retry_at=lambda _: later)
    assert rescued.id == job_id
    fenced = {"lease_token": lease["lease_token"]}
    for call, body in (
        ("heartbeat", fenced),
        ("complete", {**fenced, "outputs": []}),
        ("fail", {**fenced, "failure": {"code": "x", "message": "y"}}),
    ):
        r = await worker.post(f"/worker/v1/jobs/{job_id}/{call}", json=body)
        assert r.status_code == 409 and r.json()["error"]["code"] == "lease_lost", call
    r = await worker.get(f"/worker/v1/jobs/{job_id}/prompt", headers={LEASE_HEADER: "stale"})
    assert r.status_code == 409
    transport = HttpTransport(rg.url, secret)
    try:
        with pytest.raises(LeaseLost):
            await transport.heartbeat(lease_from_dict(lease))
    finally:
        await transport.aclose()


async def test_outputs_uploaded_and_completed_appear_in_the_job(
    rg: RunningGateway, worker: httpx.AsyncClient
) -> None:
    job_id = await _submit(rg)
    lease = (await _lease(worker)).json()
    token = {LEASE_HEADER: lease["lease_token"]}
    served = await worker.get(lease["urls"]["prompt"], headers=token)
    graph = served.json()
    assert isinstance(graph, dict) and graph
    # A stored file, so never active content, even to an agent.
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"].startswith("sandbox;")
    assert served.headers["content-disposition"] == 'attachment; filename="prompt.json"'
    bad = await worker.put(f"/worker/v1/jobs/{job_id}/outputs/..%2Fx.png", headers=token)
    assert bad.status_code in (404, 422)
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 1000
    up = await worker.put(
        f"/worker/v1/jobs/{job_id}/outputs/9-0.png",
        headers={**token, "content-type": "image/png"},
        content=png,
    )
    assert up.status_code == 200, up.text
    stored = up.json()
    assert stored["key"] == f"{lease['outputs_prefix']}/9-0.png"
    assert stored["sha256"] == hashlib.sha256(png).hexdigest() and stored["bytes"] == len(png)
    output = {**stored, "kind": "image", "content_type": "image/png", "node_id": "9"}
    outside = {**output, "key": "outputs/other/main/1/9-0.png"}
    body = {"lease_token": lease["lease_token"], "outputs": [outside]}
    r = await worker.post(f"/worker/v1/jobs/{job_id}/complete", json=body)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "/outputs/0/key"
    body = {"lease_token": lease["lease_token"], "outputs": [output]}
    assert (await worker.post(f"/worker/v1/jobs/{job_id}/complete", json=body)).status_code == 204
    # A retried complete (its answer lost) is answered the same, not with lease_lost.
    assert (await worker.post(f"/worker/v1/jobs/{job_id}/complete", json=body)).status_code == 204
    async with rg.client() as c:
        job = await wait_status(c, job_id, "succeeded")
        [out] = job["outputs"]
        assert (await c.get(out["url"])).content == png


async def test_a_retryable_failure_runs_the_job_again(
    rg: RunningGateway, worker: httpx.AsyncClient
) -> None:
    job_id = await _submit(rg)
    lease = (await _lease(worker)).json()
    body = {
        "lease_token": lease["lease_token"],
        "failure": {"code": "out_of_memory", "message": "the backend ran out of memory"},
        "retryable": True,
    }
    assert (await worker.post(f"/worker/v1/jobs/{job_id}/fail", json=body)).status_code == 204
    async with rg.client() as c:
        job = await wait_status(c, job_id, "queued")
        assert job["attempts"] == 1
    retry = (await _lease(worker, "r2", wait_s=20)).json()
    assert retry["job_id"] == job_id and retry["attempt"] == 2
    assert retry["lease_token"] != lease["lease_token"]


def test_the_wire_lease_round_trips() -> None:
    lease = Lease(
        job_id="j",
        lease_token="t",
        attempt=2,
        prompt_id="p",
        prompt_key="jobs/j/prompt.json",
        inputs=(),
        outputs_prefix="outputs/j/main/2",
        timeout_s=60.0,
        lease_ttl_s=30.0,
        heartbeat_s=10.0,
    )
    assert lease_from_dict(lease_to_dict(lease)) == lease


async def test_a_model_list_goes_whole_once_then_by_its_digest(
    rg: RunningGateway, worker: httpx.AsyncClient
) -> None:
    models = ["sd15.safetensors", "sdxl.safetensors"]
    digest = models_digest(models)
    asks = {"request_id": "m", "agent_id": "a1", "backend": BACKEND, "wait_s": 0}
    # A digest this gateway never saw: it asks for the list itself.
    r = await worker.post("/worker/v1/lease", json={**asks, "models_digest": digest})
    assert r.status_code == 409 and r.json()["error"]["code"] == "models_unknown"
    # A list whose digest is not its own is refused, naming the field.
    wrong = {**asks, "models": models, "models_digest": models_digest(["other"])}
    r = await worker.post("/worker/v1/lease", json=wrong)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "/models_digest"
    whole = {**asks, "models": models, "models_digest": digest}
    assert (await worker.post("/worker/v1/lease", json=whole)).status_code == 204
    # From now on the digest alone stands for the list.
    rg.gw.gate._lessees.clear()
    r = await worker.post(
        "/worker/v1/lease", json={**asks, "request_id": "m2", "models_digest": digest}
    )
    assert r.status_code == 204
    [lessee] = rg.gw.gate.lessees()
    assert lessee.models == frozenset(models)


@pytest.mark.parametrize(
    "name",
    ["../9-0.png", "../../../jobs/x/output.json", "a/../9-0.png", "sub/9-0.png", "9-0.png\n"],
)
async def test_a_completed_output_key_is_the_prefix_and_a_file_name_or_a_422(
    rg: RunningGateway, worker: httpx.AsyncClient, name: str
) -> None:
    job_id = await _submit(rg)
    lease = (await _lease(worker)).json()
    token = {LEASE_HEADER: lease["lease_token"]}
    put = await worker.put(
        f"/worker/v1/jobs/{job_id}/outputs/{quote(name, safe='')}", headers=token
    )
    assert put.status_code in (404, 422)
    output = {
        "key": f"{lease['outputs_prefix']}/{name}",
        "bytes": 8,
        "sha256": "0" * 64,
        "kind": "image",
        "content_type": "image/png",
        "node_id": "9",
    }
    body = {"lease_token": lease["lease_token"], "outputs": [output]}
    r = await worker.post(f"/worker/v1/jobs/{job_id}/complete", json=body)
    assert r.status_code == 422, r.text
    [detail] = r.json()["error"]["details"]
    assert (detail["path"], detail["keyword"]) == ("/outputs/0/key", "pattern")
