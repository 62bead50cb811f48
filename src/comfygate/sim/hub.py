"""The WebSocket side: who is connected, what each negotiated, and one ordered outbox.

Like ComfyUI's ``send_sync`` + ``publish_loop``, every message (from a request handler, the
executor or a node thread) goes through one queue, so clients see them in emission order.
A message with ``sid=None`` goes to every socket; otherwise only to that client's socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import threading
from typing import Any

from aiohttp import web

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4

SERVER_FEATURES: dict[str, Any] = {"supports_preview_metadata": True, "max_upload_size": 104857600}

_Message = tuple[str | int, Any, str | None]


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.requests: dict[str, web.Request] = {}
        self.flags: dict[str, dict[str, Any]] = {}
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._outbox: asyncio.Queue[_Message] = asyncio.Queue()

    def emit(self, event: str | int, data: Any, sid: str | None = None) -> None:
        """Queue one message; safe to call from any thread."""
        if threading.get_ident() == self._loop_thread:
            self._outbox.put_nowait((event, data, sid))
        else:
            self._loop.call_soon_threadsafe(self._outbox.put_nowait, (event, data, sid))

    def supports_preview_metadata(self, sid: str | None) -> bool:
        if sid is None or sid not in self.flags:
            return False
        return self.flags[sid].get("supports_preview_metadata", False) is True

    async def publish_forever(self) -> None:
        while True:
            event, data, sid = await self._outbox.get()
            try:
                if isinstance(event, int):
                    await self._send_bytes(struct.pack(">I", event) + data, sid)
                else:
                    await self._send_text(json.dumps({"type": event, "data": data}), sid)
            finally:
                self._outbox.task_done()

    async def drain(self) -> None:
        """Wait until everything emitted so far has been handed to the sockets."""
        await self._outbox.join()

    def targets(self, sid: str | None) -> list[web.WebSocketResponse]:
        if sid is None:
            return list(self.sockets.values())
        ws = self.sockets.get(sid)
        return [] if ws is None else [ws]

    async def _send_text(self, text: str, sid: str | None) -> None:
        for ws in self.targets(sid):
            # A dead socket only loses its own messages, as in ComfyUI.
            with contextlib.suppress(Exception):
                await ws.send_str(text)

    async def _send_bytes(self, payload: bytes, sid: str | None) -> None:
        for ws in self.targets(sid):
            with contextlib.suppress(Exception):
                await ws.send_bytes(payload)

    def abort_all(self) -> None:
        """Drop every connection without a close frame, as a dying process does."""
        for request in list(self.requests.values()):
            transport = request.transport
            if transport is not None:
                transport.abort()


def preview_frame(jpeg: bytes) -> bytes:
    """Body of a type-1 PREVIEW_IMAGE frame (the event type is prefixed when sent)."""
    return struct.pack(">I", 1) + jpeg  # 1 = JPEG


def preview_frame_with_metadata(jpeg: bytes, metadata: dict[str, Any]) -> bytes:
    """Body of a type-4 PREVIEW_IMAGE_WITH_METADATA frame."""
    blob = json.dumps({**metadata, "image_type": "image/jpeg"}).encode()
    return struct.pack(">I", len(blob)) + blob + jpeg


def text_frame(node_id: str, text: str) -> bytes:
    """Body of a type-3 TEXT frame."""
    node = node_id.encode()
    return struct.pack(">I", len(node)) + node + text.encode()
