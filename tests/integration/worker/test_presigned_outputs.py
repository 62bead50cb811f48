"""With S3 storage a remote agent uploads its outputs to presigned URLs, signed for each
file's type and length; the gateway relays no output bytes and checks on complete that
every object arrived with its declared size."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable
from urllib.parse import parse_qs, urlsplit

import httpx

from comfygate.comfy.session import open_session
from comfygate.worker.remote import build_remote_agent
from tests.integration.conftest import GatewayFactory, SimFactory, submit_and_lease, wait_status
from tests.s3server import S3Server

PNG = b"\x89PNG\r\n\x1a\n" + b"p" * 2000


async def test_a_remote_agent_puts_outputs_straight_into_the_bucket(
    start_gateway: GatewayFactory, start_sim: SimFactory, s3_server: S3Server
) -> None:
    rg = await start_gateway(**s3_server.overrides())
    relayed: list[str] = []
    real_put_stream = rg.gw.storage.put_stream

    async def counted(key: str, chunks: AsyncIterable[bytes], content_type: str) -> tuple[int, str]:
        relayed.append(key)
        return await real_put_stream(key, chunks, content_type)

    rg.gw.storage.put_stream = counted  # type: ignore[method-assign]
    _, secret = await rg.gw.api_keys.create("gpu-1", frozenset({"worker"}))
    sim = await start_sim()
    async with open_session() as http:
        agent, transport = build_remote_agent(
            gateway=rg.url, token=secret, comfy=sim.url, pool="default", http=http
        )
        task = asyncio.create_task(agent.run())
        try:
            async with rg.client() as c:
                r = await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 4}})
                job = await wait_status(c, r.json()["id"], "succeeded", "failed", within_s=30)
                assert job["status"] == "succeeded", job
                for output in job["outputs"]:
                    assert output["url"].startswith(s3_server.endpoint_url)
                    got = await c.get(output["url"])
                    assert got.status_code == 200 and len(got.content) == output["bytes"]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await transport.aclose()
    assert job["outputs"] and not [k for k in relayed if k.startswith("outputs/")], relayed


async def test_output_urls_sign_the_length_and_complete_checks_what_arrived(
    start_gateway: GatewayFactory, s3_server: S3Server
) -> None:
    rg = await start_gateway(**s3_server.overrides())
    _, secret = await rg.gw.api_keys.create("gpu-1", frozenset({"worker"}))
    async with (
        rg.client(headers={"authorization": f"Bearer {secret}"}) as worker,
        rg.client() as c,
        httpx.AsyncClient() as plain,
    ):
        lease = await submit_and_lease(c, worker)
        job_id = lease["job_id"]
        assert lease["outputs_upload"] == "presigned"
        token = {"X-Lease-Token": lease["lease_token"]}
        base = f"/worker/v1/jobs/{job_id}/outputs"
        asked = await worker.post(
            f"{base}/9-0.png/url", headers=token, json={"content_type": "image/png", "bytes": 2008}
        )
        assert asked.status_code == 200, asked.text
        signed = asked.json()
        assert signed["key"] == f"{lease['outputs_prefix']}/9-0.png"
        query = parse_qs(urlsplit(signed["url"]).query)
        assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
        bad = await worker.post(
            f"{base}/..%2Fx/url", headers=token, json={"content_type": "image/png", "bytes": 1}
        )
        assert bad.status_code in (404, 422)
        stale = await worker.post(
            f"{base}/9-0.png/url",
            headers={"X-Lease-Token": "stale"},
            json={"content_type": "image/png", "bytes": 1},
        )
        assert stale.status_code == 409

        output = {
            "key": signed["key"],
            "kind": "image",
            "content_type": "image/png",
            "bytes": len(PNG),
            "sha256": "0" * 64,
            "node_id": "9",
        }
        body = {"lease_token": lease["lease_token"], "outputs": [output]}
        # Nothing uploaded yet: complete names the output that is not there.
        r = await worker.post(f"/worker/v1/jobs/{job_id}/complete", json=body)
        assert (
            r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "/outputs/0/bytes"
        )
        put = await plain.put(signed["url"], content=PNG, headers=signed["headers"])
        assert put.status_code == 200
        r = await worker.post(f"/worker/v1/jobs/{job_id}/complete", json=body)
        assert r.status_code == 204, r.text
        done = await wait_status(c, job_id, "succeeded")
        assert (await c.get(done["outputs"][0]["url"])).content == PNG


async def test_with_local_storage_outputs_still_go_through_the_gateway(
    start_gateway: GatewayFactory,
) -> None:
    rg = await start_gateway()
    _, secret = await rg.gw.api_keys.create("gpu-1", frozenset({"worker"}))
    async with rg.client(headers={"authorization": f"Bearer {secret}"}) as worker, rg.client() as c:
        lease = await submit_and_lease(c, worker)
        job_id = lease["job_id"]
        assert lease["outputs_upload"] == "gateway"
        asked = await worker.post(
            f"/worker/v1/jobs/{job_id}/outputs/9-0.png/url",
            headers={"X-Lease-Token": lease["lease_token"]},
            json={"content_type": "image/png", "bytes": 10},
        )
        assert asked.status_code == 409
