from __future__ import annotations

import httpx
from fastapi import FastAPI

from comfygate.api.errors import error_body, install
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


def test_an_error_body_repeats_no_huge_string_and_no_endless_list() -> None:
    details = [{"path": "/" + "k" * 10_000, "message": "m"}] * 1000
    body = error_body("invalid_params", "v" * 10_000, details)["error"]
    assert len(body["message"]) < 1100 and body["message"].endswith("(9000 characters cut)")
    assert len(body["details"]) == 100
    assert len(body["details"][0]["path"]) < 1100
