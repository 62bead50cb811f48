"""A webhook receiver on loopback (optionally HTTPS): records every request and answers
with the status code a test scripts for its path."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.wait import serving

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    #: path -> (status code, extra headers, body); unknown paths answer 200
    answers: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[Received] = field(default_factory=list)
    #: requests to these paths get no answer until ``stop`` (a receiver that hangs)
    hold: set[str] = field(default_factory=set)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.seen.append(Received(scope["method"], scope["path"], headers, body))
        if scope["path"] in self.hold:
            await self._release.wait()
        code, extra, content = self.answers.get(scope["path"], (200, {}, b"ok"))
        raw = [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": code, "headers": raw})
        await send({"type": "http.response.body", "body": content})

    async def start(self, **ssl: Any) -> str:
        config = uvicorn.Config(self, host="127.0.0.1", port=0, log_level="warning", **ssl)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        port = await serving(self._server, self._task, "the webhook receiver")
        self.url = f"{'https' if ssl else 'http'}://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    def at(self, path: str) -> list[Received]:
        return [r for r in self.seen if r.path == path]

    async def wait_for(self, path: str, count: int = 1, within_s: float = 20) -> list[Received]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while len(self.at(path)) < count:
            if loop.time() > deadline:
                raise AssertionError(f"{path} got {len(self.at(path))} of {count}: {self.seen}")
            await asyncio.sleep(0.02)
        return self.at(path)
