"""An output too large for one PUT goes from a remote agent to S3 as a multipart upload:
the gateway starts it and presigns each part for its length, the agent sends the parts
from its spool, and the gateway joins them (or aborts them, so no parts linger)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from comfygate.api import worker_outputs
from comfygate.jobs.keys import manifest_key
from comfygate.jobs.model import Lease, Lessee, OutputFile
from comfygate.storage.parts import MIB
from comfygate.worker.transport import presigned
from comfygate.worker.transport.http import HttpTransport
from comfygate.worker.transport.presigned import PART_RETRIES
from tests.integration.conftest import (
    GatewayFactory,
    RunningGateway,
    submit_and_lease,
    wait_status,
)
from tests.s3server import S3Server

#: 11 MiB and a bit, every MiB different: three 5 MiB parts, the last one short
VIDEO = b"".join(bytes([n]) * MIB for n in range(11)) + b"moov"


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts of S3's minimum size, for files over it (an 11 MiB file takes three), and a
    failed part sent again at once."""
    monkeypatch.setattr(worker_outputs, "MULTIPART_ABOVE_BYTES", 5 * MIB)
    monkeypatch.setattr(worker_outputs, "PART_BYTES", 5 * MIB)
    monkeypatch.setattr(presigned, "PART_RETRY_S", 0.0)


async def chunks(data: bytes, size: int = 300_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def leased(rg: RunningGateway) -> tuple[HttpTransport, Lease]:
    """A job submitted, and leased by a remote agent's transport."""
    _, secret = await rg.gw.api_keys.create("gpu-1", frozenset({"worker"}))
    transport = HttpTransport(rg.url, secret)
    async with rg.client() as c:
        r = await c.post("/v1/workflows/txt2img/jobs", json={"params": {}})
        assert r.status_code in (200, 201, 202), r.text
    lease = await transport.lease(
        Lessee(agent_id="a", backend="http://g", pools=("default",)), wait_s=5
    )
    assert lease is not None
    return transport, lease


async def test_a_large_output_goes_up_in_parts_and_arrives_whole(
    start_gateway: GatewayFactory, s3_server: S3Server, small_parts: None
) -> None:
    rg = await start_gateway(**s3_server.overrides())
    transport, lease = await leased(rg)
    try:
        key, size, sha = await transport.blobs.write(lease, "9-0.mp4", chunks(VIDEO), "video/mp4")
        assert key == f"{lease.outputs_prefix}/9-0.mp4"
        assert (size, sha) == (len(VIDEO), hashlib.sha256(VIDEO).hexdigest())
        output = OutputFile(
            key=key, kind="video", content_type="video/mp4", bytes=size, sha256=sha, node_id="9"
        )
        await transport.complete(lease, [output])
    finally:
        await transport.aclose()
    async with rg.client() as c:
        job = await wait_status(c, lease.job_id, "succeeded")
        got = await c.get(job["outputs"][0]["url"])
    assert got.status_code == 200 and got.content == VIDEO
    # S3 names a multipart object's ETag by its part count.
    assert got.headers["etag"].strip('"').endswith("-3")
    manifest = json.loads(await rg.gw.storage.get_bytes(manifest_key(lease.job_id)))
    assert manifest["outputs"][0]["sha256"] == hashlib.sha256(VIDEO).hexdigest()
    assert s3_server.open_uploads(rg.settings.storage_url) == []


class FailingPart(httpx.AsyncBaseTransport):
    """Storage as the agent reaches it, but part 2 meets a 503 ``times`` times (each time
    noting which multipart uploads are open)."""

    def __init__(self, s3_server: S3Server, storage_url: str, times: int) -> None:
        self._real = httpx.AsyncHTTPTransport()
        self._open = lambda: s3_server.open_uploads(storage_url)
        self._times = times
        self.open_then: list[list[str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("partNumber") == "2" and len(self.open_then) < self._times:
            self.open_then.append(await asyncio.to_thread(self._open))
            return httpx.Response(503)
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


async def failing_part(
    rg: RunningGateway, s3_server: S3Server, times: int
) -> tuple[HttpTransport, Lease, FailingPart]:
    """A leased job whose agent's part 2 fails ``times`` times."""
    transport, lease = await leased(rg)
    failing = FailingPart(s3_server, rg.settings.storage_url, times)
    await transport.storage_http.aclose()
    transport.storage_http = httpx.AsyncClient(transport=failing)
    return transport, lease, failing


async def test_a_failed_part_aborts_the_multipart_upload(
    start_gateway: GatewayFactory, s3_server: S3Server, small_parts: None
) -> None:
    rg = await start_gateway(**s3_server.overrides())
    transport, lease, failing = await failing_part(rg, s3_server, times=PART_RETRIES + 1)
    try:
        with pytest.raises(OSError, match=r"9-0\.mp4"):
            await transport.blobs.write(lease, "9-0.mp4", chunks(VIDEO), "video/mp4")
    finally:
        await transport.aclose()
    assert len(failing.open_then) == PART_RETRIES + 1
    assert all(len(open_then) == 1 for open_then in failing.open_then)
    assert s3_server.open_uploads(rg.settings.storage_url) == []
    assert await rg.gw.storage.stat(f"{lease.outputs_prefix}/9-0.mp4") is None


async def test_a_part_that_fails_once_is_sent_again(
    start_gateway: GatewayFactory, s3_server: S3Server, small_parts: None
) -> None:
    rg = await start_gateway(**s3_server.overrides())
    transport, lease, failing = await failing_part(rg, s3_server, times=1)
    try:
        key, _, _ = await transport.blobs.write(lease, "9-0.mp4", chunks(VIDEO), "video/mp4")
    finally:
        await transport.aclose()
    assert len(failing.open_then) == 1
    assert await rg.gw.storage.get_bytes(key) == VIDEO


async def test_part_urls_are_signed_per_part_and_joining_is_checked(
    start_gateway: GatewayFactory, s3_server: S3Server
) -> None:
    rg = await start_gateway(**s3_server.overrides())
    _, secret = await rg.gw.api_keys.create("gpu-1", frozenset({"worker"}))
    async with (
        rg.client(headers={"authorization": f"Bearer {secret}"}) as worker,
        rg.client() as c,
    ):
        lease = await submit_and_lease(c, worker)
        job_id = lease["job_id"]
        token = {"X-Lease-Token": lease["lease_token"]}
        base = f"/worker/v1/jobs/{job_id}/outputs/9-0.mp4"

        async def post(path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
            return await worker.post(f"{base}/{path}", json=body, headers=kw.get("headers", token))

        def field(r: httpx.Response) -> str:
            assert r.status_code == 422, r.text
            return str(r.json()["error"]["details"][0]["path"])

        size = 300 * MIB  # over the default threshold: 64 MiB parts, the last 44 MiB
        asked = await post("url", {"content_type": "video/mp4", "bytes": size, "multipart": True})
        assert asked.status_code == 200, asked.text
        started = asked.json()
        assert started["key"] == f"{lease['outputs_prefix']}/9-0.mp4" and "url" not in started
        parts = started["parts"]
        assert [p["number"] for p in parts] == [1, 2, 3, 4, 5]
        assert [p["bytes"] for p in parts] == [64 * MIB] * 4 + [44 * MIB]
        for part in parts:
            query = parse_qs(urlsplit(part["url"]).query)
            assert query["partNumber"] == [str(part["number"])]
            assert query["uploadId"] == [started["upload_id"]]
            assert query["X-Amz-SignedHeaders"] == ["content-length;host"]
            assert part["method"] == "PUT" and part["headers"]["Content-Type"]
        assert s3_server.open_uploads(rg.settings.storage_url)

        # An agent that does not ask for parts gets one PUT, up to what S3 takes.
        single = await post("url", {"content_type": "video/mp4", "bytes": size})
        assert single.status_code == 200 and "parts" not in single.json()
        assert field(await post("url", {"content_type": "video/mp4", "bytes": 6 * 1024**3})) == (
            "/bytes"
        )
        assert field(await post("url", {"content_type": "v", "bytes": 6 * 1024**4})) == "/bytes"

        done = {"upload_id": started["upload_id"], "bytes": size, "etags": ['"x"'] * 5}
        stale = await post("parts/complete", done, headers={"X-Lease-Token": "stale"})
        assert stale.status_code == 409
        assert field(await post("parts/complete", {**done, "etags": []})) == "/etags"
        assert field(await post("parts/complete", {**done, "bytes": 0})) == "/bytes"
        # Parts storage will not join: refused, and the upload is dropped.
        assert field(await post("parts/complete", done)) == "/etags"
        assert s3_server.open_uploads(rg.settings.storage_url) == []

        again = await post("url", {"content_type": "video/mp4", "bytes": size, "multipart": True})
        upload_id = again.json()["upload_id"]
        assert field(await post("parts/abort", {"upload_id": ""})) == "/upload_id"
        aborted = await post("parts/abort", {"upload_id": upload_id})
        assert aborted.status_code == 204, aborted.text
        assert s3_server.open_uploads(rg.settings.storage_url) == []
        bad_name = await worker.post(
            f"/worker/v1/jobs/{job_id}/outputs/.x/parts/abort",
            json={"upload_id": upload_id},
            headers=token,
        )
        assert field(bad_name) == "/name"
