"""The real gateway and simulator with S3 storage (moto): nothing passes through /files."""

from __future__ import annotations

import hashlib

import httpx

from comfygate.sim import SimServer
from tests.images import png
from tests.integration.conftest import GatewayFactory, wait_status
from tests.s3server import S3Server
from tests.wait import eventually


async def test_presigned_upload_job_and_presigned_download(
    sim: SimServer, start_gateway: GatewayFactory, s3_server: S3Server
) -> None:
    gateway = await start_gateway(sim.url, **s3_server.overrides())
    data = png(64, 48)
    async with gateway.client() as c, httpx.AsyncClient(timeout=30) as bucket:
        r = await c.post(
            "/v1/uploads",
            json={"filename": "me.png", "content_type": "image/png", "bytes": len(data)},
        )
        assert r.status_code == 201, r.text
        up = r.json()
        assert up["upload"]["url"].startswith(f"{s3_server.endpoint_url}/{s3_server.bucket}/")
        put = await bucket.request(
            up["upload"]["method"],
            up["upload"]["url"],
            content=data,
            headers=up["upload"]["headers"],
        )
        assert put.status_code == 200, put.text
        done = await c.post(f"/v1/uploads/{up['id']}/complete")
        assert done.status_code == 200, done.text
        assert (done.json()["width"], done.json()["height"]) == (64, 48)

        r = await c.post(
            "/v1/workflows/img2img/jobs", json={"params": {"image": up["id"], "steps": 2}}
        )
        assert r.status_code == 202, r.text
        job = await wait_status(c, r.json()["id"], "succeeded", "failed")
        assert job["status"] == "succeeded", job
        [asset] = job["outputs"]
        assert asset["url"].startswith(f"{s3_server.endpoint_url}/{s3_server.bucket}/")
        assert "X-Amz-Signature=" in asset["url"]
        got = await bucket.get(asset["url"])
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == asset["sha256"]

        # The gateway's own file links are not issued with S3, and not honoured.
        assert (await c.get("/files/jobs/x/output.json?exp=1&sig=x")).status_code == 403
        page = await c.get("/w/img2img")
        csp = page.headers["content-security-policy"]
        for directive in ("img-src", "media-src", "connect-src"):
            [rule] = [part for part in csp.split(";") if part.strip().startswith(directive)]
            assert s3_server.endpoint_url in rule.split(), csp
        ready = await eventually(
            lambda: c.get("/readyz"), lambda r: r.status_code == 200, "the gateway to be ready"
        )
        assert ready.json()["checks"]["storage"] == "ok"

    saved = list((sim.config.output_dir / "comfygate" / job["id"]).rglob("*.png"))
    assert len(saved) == 1 and got.content == saved[0].read_bytes()
    uploaded = [body for method, path, body in sim.log if path == "/upload/image"]
    assert uploaded, "the agent sent the input from the bucket to ComfyUI"
    # Nothing was written to the local storage folder.
    assert not gateway.settings.storage_dir.exists() or not any(
        gateway.settings.storage_dir.rglob("*.png")
    )
