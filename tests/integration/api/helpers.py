"""What the API tests do as a client: call as the admin or as a browser's visitor,
and upload a file the way the API asks."""

from __future__ import annotations

import httpx

from comfygate.api.deps import VISITOR_COOKIE
from tests.integration.conftest import RunningGateway

IMAGE_OPS = "/v1/workflows/image-ops/jobs"


def admin(gateway: RunningGateway) -> httpx.AsyncClient:
    return gateway.client(headers={"Authorization": f"Bearer {gateway.settings.admin_key()}"})


async def become_visitor(client: httpx.AsyncClient) -> None:
    """Like a browser: open the home page and keep the visitor cookie it issues; like
    the page's scripts, echo the CSRF cookie on unsafe calls."""
    r = await client.get("/")
    assert r.status_code == 200, r.text
    assert VISITOR_COOKIE in client.cookies
    client.headers["x-csrf-token"] = client.cookies["comfygate_csrf"]


async def declare_send_complete(
    c: httpx.AsyncClient, data: bytes, *, filename: str = "a.png", content_type: str = "image/png"
) -> tuple[str, httpx.Response]:
    r = await c.post(
        "/v1/uploads",
        json={"filename": filename, "content_type": content_type, "bytes": len(data)},
    )
    assert r.status_code == 201, r.text
    up = r.json()
    put = await c.request(
        up["upload"]["method"], up["upload"]["url"], content=data, headers=up["upload"]["headers"]
    )
    assert put.status_code == 204, put.text
    return up["id"], await c.post(f"/v1/uploads/{up['id']}/complete")
