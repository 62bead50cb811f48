"""The simulator's HTTP and WebSocket server (aiohttp, like ComfyUI itself).

Every route is also served under ``/api``. Handlers follow ComfyUI 0.3.64's ``server.py``
closely enough that its failure modes carry over: a body that is not JSON, or a prompt
that is not an object, crashes the handler and aiohttp answers with its stock 500 page.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import random
import shutil
import socket
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from comfygate.clock import SYSTEM_CLOCK, Clock
from comfygate.sim.config import SimConfig
from comfygate.sim.executor import Knobs, PromptExecutor
from comfygate.sim.files import Folders, mask_saver, upload, view
from comfygate.sim.hub import SERVER_FEATURES, Hub
from comfygate.sim.queue import PromptQueue
from comfygate.sim.specs import CHECKPOINTS, NodeSpecs
from comfygate.sim.system import system_stats
from comfygate.sim.validation import validate_prompt

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LogEntry = tuple[str, str, Any]

MAX_UPLOAD_SIZE = 104857600
LOGGED_PATHS = frozenset({"/prompt", "/queue", "/interrupt", "/free", "/upload/image"})


@dataclass
class Record:
    """What outlives one server instance: the control-request log and concurrency peak."""

    log: list[LogEntry] = field(default_factory=list)
    running: int = 0
    max_concurrent: int = 0


class SimState:
    def __init__(
        self, config: SimConfig, record: Record, clock: Clock, on_crash: Callable[[], None]
    ) -> None:
        self.config = config
        self.record = record
        self.clock = clock
        self.root = os.path.abspath(config.data_dir)
        self.folders = Folders(self.root)
        self.specs = NodeSpecs(config.input_dir)
        self.number = 0
        self.rng = random.Random(config.seed)
        self.on_crash = on_crash
        self.hub: Hub
        self.queue: PromptQueue
        self.executor: PromptExecutor
        self.tasks: list[asyncio.Task[None]] = []

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def queue_updated(self) -> None:
        self.hub.emit("status", {"status": self.queue_info()})

    async def startup(self) -> None:
        shutil.rmtree(self.folders.temp, ignore_errors=True)
        for folder in (self.folders.input, self.folders.output, self.folders.temp):
            os.makedirs(folder, exist_ok=True)
        self.hub = Hub(asyncio.get_running_loop())
        self.queue = PromptQueue(self.queue_updated)
        knobs = Knobs(
            root=self.root,
            step_ms=self.config.step_ms,
            fail_rate=self.config.fail_rate,
            crash_after_steps=self.config.crash_after_steps,
            overhead_ms=self.config.overhead_ms,
            stall_rate=self.config.stall_rate,
            ws_drop_rate=self.config.ws_drop_rate,
            oom_rate=self.config.oom_rate,
        )
        self.executor = PromptExecutor(
            specs=self.specs,
            hub=self.hub,
            clock=self.clock,
            knobs=knobs,
            rng=self.rng,
            on_crash=self.on_crash,
        )
        self.tasks = [
            asyncio.create_task(self.hub.publish_forever(), name="sim-publish"),
            asyncio.create_task(self.work_forever(), name="sim-worker"),
        ]

    async def shutdown(self) -> None:
        self.hub.abort_all()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def work_forever(self) -> None:
        """ComfyUI's ``prompt_worker``: one prompt at a time, then the /free flags."""
        while True:
            await self.queue.wait()
            taken = self.queue.get()
            if taken is not None:
                item, number = taken
                await self._run(item, number)
            flags = self.queue.take_flags()
            if flags.get("free_memory", False):
                self.executor.cache.clear()

    async def _run(self, item: list[Any], number: int) -> None:
        self.record.running += 1
        self.record.max_concurrent = max(self.record.max_concurrent, self.record.running)
        try:
            outcome = await self.executor.execute(item[2], item[1], item[3], item[4])
        finally:
            self.record.running -= 1
        status = {
            "status_str": "success" if outcome.success else "error",
            "completed": outcome.success,
            "messages": outcome.messages,
        }
        result = {"outputs": outcome.outputs, "meta": outcome.meta}
        if self.config.history_lag_ms > 0:
            await self.hub.drain()
            await self.clock.sleep(self.config.history_lag_ms / 1000)
        self.queue.task_done(number, result, status)
        self.executor.finished(item[1])


STATE = web.AppKey("sim_state", SimState)


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    loopback = False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            for *_, sockaddr in socket.getaddrinfo(host, None, family, socket.SOCK_STREAM):
                if not ipaddress.ip_address(sockaddr[0]).is_loopback:
                    return loopback
                loopback = True
        except socket.gaierror:
            pass
    return loopback


@web.middleware
async def origin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ComfyUI's defence against browsers posting to localhost from a foreign page."""
    if "Host" in request.headers and "Origin" in request.headers:
        host_domain: str | None = request.headers["Host"].lower()
        parsed = urllib.parse.urlparse(request.headers["Origin"])
        origin_domain: str | None = parsed.netloc.lower()
        host_parsed = urllib.parse.urlsplit("//" + (host_domain or ""))
        loopback = _is_loopback(host_parsed.hostname)
        if parsed.port is None:
            host_domain = host_parsed.hostname
        if host_parsed.port is None:
            origin_domain = parsed.hostname
        if loopback and host_domain and origin_domain and host_domain != origin_domain:
            return web.Response(status=403)
    if request.method == "OPTIONS":
        return web.Response()
    return await handler(request)


@web.middleware
async def log_control(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path.removeprefix("/api")
    if request.method == "POST" and path in LOGGED_PATHS:
        body: Any = None
        if path == "/upload/image":
            with contextlib.suppress(Exception):
                post = await request.post()
                body = {
                    k: (v.filename if isinstance(v, web.FileField) else v) for k, v in post.items()
                }
        else:
            with contextlib.suppress(Exception):
                body = await request.json()
        request.app[STATE].record.log.append((request.method, path, body))
    return await handler(request)


def _routes() -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/ws")
    async def websocket(request: web.Request) -> web.WebSocketResponse:
        state = request.app[STATE]
        hub = state.hub
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId", "")
        if sid:
            hub.sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        hub.sockets[sid] = ws
        hub.requests[sid] = request
        hub.flags[sid] = {}
        try:
            await ws.send_json(
                {"type": "status", "data": {"status": state.queue_info(), "sid": sid}}
            )
            executor = state.executor
            if executor.client_id == sid and executor.last_node_id is not None:
                await ws.send_json({"type": "executing", "data": {"node": executor.last_node_id}})
            first = True
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                with contextlib.suppress(ValueError, AttributeError):
                    data = json.loads(msg.data)
                    if first and data.get("type") == "feature_flags":
                        hub.flags[sid] = data.get("data", {})
                        await ws.send_json({"type": "feature_flags", "data": dict(SERVER_FEATURES)})
                    first = False
        finally:
            # Like ComfyUI, this forgets the client id even if a newer socket took it over.
            hub.sockets.pop(sid, None)
            hub.requests.pop(sid, None)
            hub.flags.pop(sid, None)
        return ws

    @routes.get("/features")
    async def features(request: web.Request) -> web.Response:
        return web.json_response(dict(SERVER_FEATURES))

    @routes.get("/system_stats")
    async def stats(request: web.Request) -> web.Response:
        return web.json_response(system_stats())

    @routes.get("/object_info")
    async def object_info(request: web.Request) -> web.Response:
        return web.json_response(request.app[STATE].specs.object_info())

    @routes.get("/object_info/{node_class}")
    async def object_info_node(request: web.Request) -> web.Response:
        specs = request.app[STATE].specs
        name = request.match_info["node_class"]
        return web.json_response({name: specs.info(name)} if name in specs else {})

    @routes.get("/prompt")
    async def get_prompt(request: web.Request) -> web.Response:
        return web.json_response(request.app[STATE].queue_info())

    @routes.post("/prompt")
    async def post_prompt(request: web.Request) -> web.Response:
        state = request.app[STATE]
        json_data = await request.json()
        if "number" in json_data:
            number: float = float(json_data["number"])
        else:
            number = state.number
            if json_data.get("front"):
                number = -number
            state.number += 1
        if "prompt" not in json_data:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        prompt = json_data["prompt"]
        prompt_id = str(json_data.get("prompt_id", uuid.uuid4()))
        verdict = validate_prompt(
            prompt,
            json_data.get("partial_execution_targets"),
            state.specs,
            state.config.input_dir,
            state.root,
        )
        extra_data = json_data.get("extra_data", {})
        if "client_id" in json_data:
            extra_data["client_id"] = json_data["client_id"]
        if not verdict.ok:
            return web.json_response(
                {"error": verdict.error, "node_errors": verdict.node_errors}, status=400
            )
        state.queue.put([number, prompt_id, prompt, extra_data, verdict.outputs])
        return web.json_response(
            {"prompt_id": prompt_id, "number": number, "node_errors": verdict.node_errors}
        )

    @routes.get("/queue")
    async def get_queue(request: web.Request) -> web.Response:
        queue = request.app[STATE].queue
        return web.json_response(
            {"queue_running": list(queue.running.values()), "queue_pending": list(queue.pending)}
        )

    @routes.post("/queue")
    async def post_queue(request: web.Request) -> web.Response:
        queue = request.app[STATE].queue
        json_data = await request.json()
        if json_data.get("clear"):
            queue.wipe()
        if "delete" in json_data:
            for prompt_id in json_data["delete"]:
                queue.delete(prompt_id)
        return web.Response(status=200)

    @routes.post("/interrupt")
    async def post_interrupt(request: web.Request) -> web.Response:
        state = request.app[STATE]
        try:
            json_data = await request.json()
        except json.JSONDecodeError:
            json_data = {}
        prompt_id = json_data.get("prompt_id")
        if not prompt_id or prompt_id in state.queue.running_ids():
            state.executor.interrupt()
        return web.Response(status=200)

    @routes.post("/free")
    async def post_free(request: web.Request) -> web.Response:
        queue = request.app[STATE].queue
        json_data = await request.json()
        if json_data.get("unload_models", False):
            queue.set_flag("unload_models", True)
        if json_data.get("free_memory", False):
            queue.set_flag("free_memory", True)
        return web.Response(status=200)

    @routes.get("/history")
    async def get_history(request: web.Request) -> web.Response:
        query = request.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        history = request.app[STATE].queue.get_history(max_items=max_items, offset=offset)
        return web.json_response(history)

    @routes.get("/history/{prompt_id}")
    async def get_history_item(request: web.Request) -> web.Response:
        queue = request.app[STATE].queue
        return web.json_response(queue.get_history(prompt_id=request.match_info["prompt_id"]))

    @routes.post("/history")
    async def post_history(request: web.Request) -> web.Response:
        queue = request.app[STATE].queue
        json_data = await request.json()
        if json_data.get("clear"):
            queue.history = {}
        if "delete" in json_data:
            for prompt_id in json_data["delete"]:
                queue.history.pop(prompt_id, None)
        return web.Response(status=200)

    @routes.post("/upload/image")
    async def upload_image(request: web.Request) -> web.Response:
        return upload(request.app[STATE].folders, await request.post())

    @routes.post("/upload/mask")
    async def upload_mask(request: web.Request) -> web.Response:
        folders = request.app[STATE].folders
        return upload(folders, await request.post(), mask_saver(folders))

    @routes.get("/view")
    async def view_file(request: web.Request) -> web.StreamResponse:
        return view(request.app[STATE].folders, request.query)

    @routes.get("/models")
    async def models(request: web.Request) -> web.Response:
        return web.json_response(["checkpoints"])

    @routes.get("/models/{folder}")
    async def models_in(request: web.Request) -> web.Response:
        if request.match_info["folder"] != "checkpoints":
            return web.Response(status=404)
        return web.json_response(list(CHECKPOINTS))

    @routes.get("/embeddings")
    async def embeddings(request: web.Request) -> web.Response:
        return web.json_response([])

    @routes.get("/extensions")
    async def extensions(request: web.Request) -> web.Response:
        return web.json_response([])

    return routes


def create_app(
    config: SimConfig,
    *,
    clock: Clock = SYSTEM_CLOCK,
    record: Record | None = None,
    on_crash: Callable[[], None] | None = None,
) -> web.Application:
    """A simulated ComfyUI as an aiohttp application (serve it with ``web.AppRunner``)."""
    state = SimState(config, record or Record(), clock, on_crash or _die)
    app = web.Application(client_max_size=MAX_UPLOAD_SIZE, middlewares=[origin_only, log_control])
    app[STATE] = state
    routes = _routes()
    api = web.RouteTableDef()
    for route in routes:
        if isinstance(route, web.RouteDef):
            api.route(route.method, "/api" + route.path)(route.handler, **route.kwargs)
    app.add_routes(api)
    app.add_routes(routes)

    async def on_startup(_: web.Application) -> None:
        await state.startup()

    async def on_shutdown(_: web.Application) -> None:
        await state.shutdown()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app


def _die() -> None:
    os._exit(1)
