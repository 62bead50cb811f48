from __future__ import annotations

import httpx
from fastapi import FastAPI

from comfygate.api.errors import install
from comfygate.errors import DatabaseBusy


async def test_a_busy_database_is_a_503_with_retry_after() -> None:
    app = FastAPI()
    install(app)

    @app.post("/jobs")
    async def submit() -> None:
        raise DatabaseBusy

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        r = await client.post("/jobs")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "database_busy"
