"""ComfySocket against recorded WebSocket sequences of a real ComfyUI."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from comfygate.comfy.client import ComfyClient
from comfygate.comfy.messages import (
    Executing,
    Message,
    Preview,
    Status,
    Text,
    parse_message,
)
from comfygate.errors import BackendUnreachable, WebSocketLost
from tests.integration.comfy.replay import Replay
from tests.recordings import sample
from tests.unit.comfy.recorded import frames

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def run_prompt(replay: Replay, comfy: ComfyClient, prompt_id: str) -> list[Message]:
    """Connect, submit, and read until the server closes or says the prompt is done."""
    seen: list[Message] = []
    async with comfy.socket() as sock:
        greeting = await anext(sock)
        assert greeting == Status(queue_remaining=0, sid=comfy.client_id)
        await comfy.submit({}, prompt_id=prompt_id)
        async for message in sock:
            seen.append(message)
            if isinstance(message, Executing) and message.node is None:
                break
    return seen


async def test_basic_run_sequence(replay: Replay, comfy: ComfyClient) -> None:
    pid = "ad361542-b9b7-4326-af0d-c2afd83122fe"
    seen = await asyncio.wait_for(run_prompt(replay, comfy, pid), 10)
    assert seen == [parse_message(f) for f in frames("ws_basic_run.json")[1:]]
    assert replay.ws_client_ids == [comfy.client_id]
    assert [json.loads(m) for m in replay.ws_received] == [
        {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
    ]


async def test_binary_previews(replay: Replay, comfy: ComfyClient) -> None:
    replay.ws_script = frames("ws_binary_frames.json#feature_flags_preview_metadata")
    pid = "6ca2a450-0c0a-4739-81eb-7806992b01f3"
    seen = await asyncio.wait_for(run_prompt(replay, comfy, pid), 10)
    previews = [m for m in seen if isinstance(m, Preview)]
    assert len(previews) == 3
    assert {(p.node_id, p.prompt_id, p.content_type) for p in previews} == {("3", pid, "image/png")}
    assert all(p.data.startswith(b"\x89PNG") for p in previews)


async def test_text_frames(replay: Replay, comfy: ComfyClient) -> None:
    replay.ws_script = frames("ws_text_frame.json")
    pid = sample("ws_text_frame.json")[3]["msg"]["data"]["prompt_id"]
    seen = await asyncio.wait_for(run_prompt(replay, comfy, pid), 10)
    assert Text("2", "width: 96, height: 64\n batch size: 2") in seen


async def test_iteration_ends_when_the_server_closes(replay: Replay, comfy: ComfyClient) -> None:
    replay.ws_script = frames("ws_cached_rerun.json")
    replay.ws_close_code = 1000
    async with comfy.socket() as sock:
        await comfy.submit({}, prompt_id="97698c68-8c60-428b-8d92-97a1f904e920")
        seen = [m async for m in sock]
    assert len(seen) == 1 + len(replay.ws_script)


async def test_broken_connection_is_websocket_lost(replay: Replay, comfy: ComfyClient) -> None:
    replay.ws_close_code = 1011
    with pytest.raises(WebSocketLost):
        async with comfy.socket() as sock:
            await comfy.submit({}, prompt_id="ad361542-b9b7-4326-af0d-c2afd83122fe")
            async for _ in sock:
                pass


async def test_socket_to_a_closed_port_is_backend_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with ComfyClient(f"http://127.0.0.1:{port}", timeout=2) as comfy:
        with pytest.raises(BackendUnreachable):
            async with comfy.socket():
                pass
