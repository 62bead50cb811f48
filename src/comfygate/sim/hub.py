"""The WebSocket side: who is connected, what each negotiated, and one ordered outbox.

Like ComfyUI's ``send_sync`` + ``publish_loop``, every message (from a request handler, the
executor or a node thread) goes through one queue, so clients see them in emission order.
A message with ``sid=None`` goes to every socket; otherwise only to that client's socket.
A message may instead ``cut`` one client: in its turn, that client's connection is aborted
(no close frame, like a network cut) and the message reaches only the other recipients.
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

_Message = tuple[str | int, Any, str | None, str | None]


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.requests: dict[str, web.Request] = {}
        self.flags: dict[str, dict[str, Any]] = {}
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._outbox: asyncio.Queue[_Message] = asyncio.Queue()

    def emit(
        self, event: str | int, data: Any, sid: str | None = None, *, cut: str | None = None
    ) -> None:
        """Queue one message; safe to call from any thread.

        With ``cut``, that client's socket is dropped when the message's turn comes, and the
        message goes only to the other sockets it was addressed to.
        """
        message = (event, data, sid, cut)
        if threading.get_ident() == self._loop_thread:
            self._outbox.put_nowait(message)
        else:
            self._loop.call_soon_threadsafe(self._outbox.put_nowait, message)

    def supports_preview_metadata(self, sid: str | None) -> bool:
        if sid is None or sid not in self.flags:
            return False
        return self.flags[sid].get("supports_preview_metadata", False) is True

    async def publish_forever(self) -> None:
        while True:
            event, data, sid, cut = await self._outbox.get()
            try:
                if cut is not None:
                    self.abort(cut)
                if isinstance(event, int):
                    await self._send_bytes(struct.pack(">I", event) + data, sid, cut)
                else:
                    await self._send_text(json.dumps({"type": event, "data": data}), sid, cut)
            finally:
                self._outbox.task_done()

    async def drain(self) -> None:
        """Wait until everything emitted so far has been handed to the sockets."""
        await self._outbox.join()

    def targets(self, sid: str | None, skip: str | None = None) -> list[web.WebSocketResponse]:
        if sid is None:
            return [ws for key, ws in self.sockets.items() if key != skip]
        ws = self.sockets.get(sid)
        return [] if ws is None or sid == skip else [ws]

    async def _send_text(self, text: str, sid: str | None, skip: str | None) -> None:
        for ws in self.targets(sid, skip):
            # A dead socket only loses its own messages, as in ComfyUI.
            with contextlib.suppress(Exception):
                await ws.send_str(text)

    async def _send_bytes(self, payload: bytes, sid: str | None, skip: str | None) -> None:
        for ws in self.targets(sid, skip):
            with contextlib.suppress(Exception):
                await ws.send_bytes(payload)

    def abort(self, sid: str) -> None:
        """Drop one client's connection without a close frame, like a network cut.

        Its ``/ws`` handler then ends and forgets the client id, as after any disconnect.
        """
        request = self.requests.get(sid)
        transport = None if request is None else request.transport
        if transport is not None:
            transport.abort()

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
