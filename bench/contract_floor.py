"""The job contract's three requests answered from a recording, with no work behind them.

``bench/overhead.py`` records one comfygate job through the API (its 202 body, its
event stream and its output) and serves it with this app, on the same server stack as
the gateway (FastAPI on uvicorn, uvloop, httptools, no access log). A client that
submits, follows the stream to its end and downloads, as the benchmark's client does,
then measures what those three exchanges cost before any gateway work: a floor under
the gateway's added time.

    COMFYGATE_FLOOR=recording.json python -m uvicorn contract_floor:app --port P
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

RECORDED = json.loads(Path(os.environ["COMFYGATE_FLOOR"]).read_text())

app = FastAPI()


@app.post("/jobs")
async def submit(request: Request) -> Response:
    await request.json()
    return Response(RECORDED["submit"], status_code=202, media_type="application/json")


@app.get("/events")
async def events() -> StreamingResponse:
    async def chunks() -> AsyncIterator[str]:
        for chunk in RECORDED["events"]:
            yield chunk

    return StreamingResponse(chunks(), media_type="text/event-stream")


@app.get("/output")
async def output() -> Response:
    return Response(bytes.fromhex(RECORDED["output"]), media_type=RECORDED["content_type"])
