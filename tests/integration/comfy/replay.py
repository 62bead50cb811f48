"""A replay server: answers ComfyUI's routes with bodies recorded from a real ComfyUI 0.3.64.

It is not a simulator: it runs nothing. Each route answers with the capture a
test chose, and ``/ws`` plays a recorded ``ws_*.json`` sequence once a prompt is
posted. Every request is recorded so a test can check what the client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.recordings import object_info, sample
from tests.unit.comfy.recorded import frames, history_sample
from tests.wait import serving

#: GET /system_stats of the recorded server (protocol notes §3)
SYSTEM_STATS = {
    "system": {
        "os": "posix",
        "ram_total": 25276502016,
        "ram_free": 24221437952,
        "comfyui_version": "0.3.64",
        "required_frontend_version": "1.27.10",
        "installed_templates_version": "0.1.95",
        "required_templates_version": "0.1.95",
        "python_version": "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]",
        "pytorch_version": "2.14.1+cu130",
        "embedded_python": False,
        "argv": ["main.py", "--cpu", "--listen", "127.0.0.1", "--port", "8188"],
    },
    "devices": [
        {
            "name": "cpu",
            "type": "cpu",
            "index": None,
            "vram_total": 25276502016,
            "vram_free": 24221437952,
            "torch_vram_total": 25276502016,
            "torch_vram_free": 24221437952,
        }
    ],
}

HISTORY_SAMPLES = (
    "history_basic.json",
    "history_cached_rerun.json",
    "history_load_scale_save.json",
    "errors_and_clients.json#runtime_error_history",
)
VIEW_CHUNK = 64


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class Replay:
    """Start once, :meth:`reset` before each test, set the answers, point a client at
    ``url``, then read ``requests``."""

    def __init__(self) -> None:
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.reset()

    def reset(self) -> None:
        #: queued answers to POST /prompt, (status, body); when empty: 200 echoing the id
        self.prompt_answers: list[tuple[int, Any]] = []
        self.histories: dict[str, Any] = dict(history_sample(n) for n in HISTORY_SAMPLES)
        self.queue_body: dict[str, Any] = sample("queue_interrupt.json#queue_during_run")
        #: frames /ws plays once a prompt is posted (a leading greeting is replaced by ours)
        self.ws_script: list[str | bytes] = frames("ws_basic_run.json")
        #: close code sent after the script; None keeps the socket open until the client
        #: leaves
        self.ws_close_code: int | None = None
        #: every HTTP status becomes 503, as from a proxy whose backend is down
        self.down = False
        #: when set, /view sends its first chunk and then waits for this before the rest
        self.view_gate: asyncio.Event | None = None
        self.requests: list[Seen] = []
        self.ws_received: list[str] = []
        self.ws_client_ids: list[str] = []
        self.uploads: dict[tuple[str, str, str], bytes] = {}
        self._posted = asyncio.Event()
        self._number = 0

    def seen(self, method: str, path: str) -> list[Seen]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # -- server --------------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [
            Route("/prompt", self.post_prompt, methods=["POST"]),
            Route("/history/{prompt_id}", self.get_history, methods=["GET"]),
            Route("/queue", self.get_queue, methods=["GET"]),
            Route("/queue", self.ok, methods=["POST"]),
            Route("/interrupt", self.ok, methods=["POST"]),
            Route("/upload/image", self.upload_image, methods=["POST"]),
            Route("/view", self.view, methods=["GET"]),
            Route("/system_stats", self.system_stats, methods=["GET"]),
            Route("/object_info", self.object_info, methods=["GET"]),
            WebSocketRoute("/ws", self.ws),
        ]
        app = Starlette(routes=routes)
        app.add_middleware(BaseHTTPMiddleware, dispatch=self._record)
        return app

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        port = await serving(self._server, self._task, "the replayed ComfyUI")
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            # Tests close their clients first; waiting on connections only costs time.
            self._server.should_exit = self._server.force_exit = True
            await self._task

    async def _record(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        raw = await request.body()
        body: Any = raw
        if request.headers.get("content-type", "").startswith("application/json"):
            body = json.loads(raw) if raw else None
        self.requests.append(
            Seen(
                request.method,
                request.url.path,
                dict(request.query_params),
                body,
                dict(request.headers),
            )
        )
        if self.down:
            return Response(status_code=503)
        return await call_next(request)

    # -- routes --------------------------------------------------------------------------

    async def ok(self, request: Request) -> Response:
        return Response(status_code=200)

    async def post_prompt(self, request: Request) -> Response:
        body = await request.json()
        self._posted.set()
        if self.prompt_answers:
            status, answer = self.prompt_answers.pop(0)
            if isinstance(answer, str):
                return PlainTextResponse(answer, status_code=status)
            return JSONResponse(answer, status_code=status)
        self._number += 1
        return JSONResponse(
            {"prompt_id": body["prompt_id"], "number": self._number, "node_errors": {}}
        )

    async def get_history(self, request: Request) -> Response:
        prompt_id = request.path_params["prompt_id"]
        entry = self.histories.get(prompt_id)
        return JSONResponse({prompt_id: entry} if entry else {})

    async def get_queue(self, request: Request) -> Response:
        return JSONResponse(self.queue_body)

    async def upload_image(self, request: Request) -> Response:
        """Recorded behaviour (upload_image.json): same name and bytes keep the name, other
        bytes get "name (1).ext", overwrite replaces, traversal is a 400 with no body."""
        async with request.form() as form:
            image = form.get("image")
            if image is None or isinstance(image, str):
                return Response(status_code=400)
            name, subfolder = str(image.filename or ""), str(form.get("subfolder") or "")
            folder = str(form.get("type") or "input")
            overwrite = str(form.get("overwrite") or "").lower() in ("true", "1")
            if ".." in name or "/" in name or ".." in subfolder.split("/"):
                return Response(status_code=400)
            data = await image.read()
        stem, dot, ext = name.rpartition(".")
        final, i = name, 0
        while not overwrite and self.uploads.get((folder, subfolder, final), data) != data:
            i += 1
            final = f"{stem} ({i}){dot}{ext}"
        self.uploads[(folder, subfolder, final)] = data
        return JSONResponse({"name": final, "subfolder": subfolder, "type": folder})

    async def view(self, request: Request) -> Response:
        params = dict(request.query_params)
        for variant in sample("view_variants.json").values():
            wanted = {"type": "output", "subfolder": "", **variant["params"]}
            if variant["status"] == 200 and {"type": "output", "subfolder": "", **params} == wanted:
                data = bytes.fromhex(variant["magic"])
                data += bytes(variant["len"] - len(data))
                headers = {
                    "content-disposition": variant["content_disposition"],
                    "content-length": str(len(data)),
                }
                return StreamingResponse(
                    self._chunks(data), media_type=variant["content_type"], headers=headers
                )
        return Response(status_code=404)

    async def _chunks(self, data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), VIEW_CHUNK):
            yield data[start : start + VIEW_CHUNK]
            if self.view_gate is not None:
                await self.view_gate.wait()

    async def system_stats(self, request: Request) -> Response:
        return JSONResponse(SYSTEM_STATS)

    async def object_info(self, request: Request) -> Response:
        return JSONResponse(object_info())

    async def ws(self, websocket: WebSocket) -> None:
        client_id = websocket.query_params.get("clientId", "")
        self.ws_client_ids.append(client_id)
        await websocket.accept()
        greeting = {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}
        await websocket.send_text(json.dumps({"type": "status", "data": greeting}))
        self.ws_received.append(await websocket.receive_text())
        await self._posted.wait()
        script = self.ws_script
        if script and isinstance(script[0], str) and '"sid"' in script[0]:
            script = script[1:]
        for frame in script:
            if isinstance(frame, bytes):
                await websocket.send_bytes(frame)
            else:
                await websocket.send_text(frame)
        if self.ws_close_code is not None:
            await websocket.close(self.ws_close_code)
            return
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()
