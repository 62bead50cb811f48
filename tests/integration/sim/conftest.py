"""A simulator on a free loopback port, and small clients for its HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from comfygate.sim import SimConfig, SimServer
from tests.recordings import sample


def basic_prompt(color: int = 12345, prefix: str = "basic") -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def sd_prompt(seed: int = 7, steps: int = 3, text: str = "a red fox", prefix: str = "sd") -> Any:
    return {
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "sim-sd15.safetensors"},
        },
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": steps,
                "cfg": 8,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
    }


@dataclass
class Socket:
    """A ``/ws`` client that keeps every message, JSON and binary, in arrival order."""

    ws: websockets.ClientConnection
    received: list[Any] = field(default_factory=list)

    async def next(self, within: float = 10) -> Any:
        raw = await asyncio.wait_for(self.ws.recv(), within)
        msg: Any = raw if isinstance(raw, bytes) else json.loads(raw)
        self.received.append(msg)
        return msg

    async def until(self, kind: str, within: float = 10, **data: Any) -> list[Any]:
        """Messages up to and including the first ``kind`` whose data holds ``data``."""
        start = len(self.received)
        while True:
            msg = await self.next(within)
            if (
                isinstance(msg, dict)
                and msg["type"] == kind
                and all(msg["data"].get(k) == v for k, v in data.items())
            ):
                return self.received[start:]

    async def until_idle(self, within: float = 10) -> list[Any]:
        """Messages up to a ``status`` that reports an empty queue."""
        start = len(self.received)
        while True:
            msg = await self.next(within)
            if (
                isinstance(msg, dict)
                and msg["type"] == "status"
                and msg["data"]["status"]["exec_info"]["queue_remaining"] == 0
            ):
                return self.received[start:]

    async def until_done(self, prompt_id: str, within: float = 10) -> list[Any]:
        return await self.until("executing", within, node=None, prompt_id=prompt_id)


def kinds(messages: list[Any]) -> list[Any]:
    """Message types; binary frames as ``bin<N>`` with their event type."""
    return [
        f"bin{struct.unpack('>I', m[:4])[0]}" if isinstance(m, bytes) else m["type"]
        for m in messages
    ]


async def interrupted_like_real(sim: Sim, ws: Socket, prompt_id: str) -> dict[str, Any]:
    """Wait for ``prompt_id`` to end interrupted, as the recorded real one did: the
    KSampler stopped, the nodes before it done, the history entry shaped like the real
    one. Returns the ``execution_interrupted`` data."""
    got = await ws.until_done(prompt_id)
    assert kinds(got)[-3:] == ["execution_interrupted", "status", "executing"]
    interrupted: dict[str, Any] = next(
        m for m in got if isinstance(m, dict) and m["type"] == "execution_interrupted"
    )["data"]
    assert (interrupted["node_id"], interrupted["node_type"]) == ("3", "KSampler")
    assert sorted(interrupted["executed"]) == ["4", "5", "6", "7"]
    entry = await sim.history(prompt_id)
    real = sample("queue_interrupt.json")["history_S1_target_interrupted"]
    assert entry["status"]["status_str"] == real["status"]["status_str"] == "error"
    assert entry["status"]["completed"] is False
    assert [m[0] for m in entry["status"]["messages"]] == [m[0] for m in real["status"]["messages"]]
    assert entry["status"]["messages"][-1][1] == interrupted
    assert (entry["outputs"], entry["meta"]) == ({}, {})
    return interrupted


@dataclass
class Sim:
    server: SimServer
    http: httpx.AsyncClient
    data_dir: Path
    sockets: list[Socket] = field(default_factory=list)

    async def socket(
        self, client_id: str | None = "probe", *, preview_metadata: bool = False
    ) -> Socket:
        query = f"?clientId={client_id}" if client_id else ""
        ws = await websockets.connect(
            f"ws://127.0.0.1:{self.server.port}/ws{query}", max_size=None, max_queue=None
        )
        sock = Socket(ws)
        self.sockets.append(sock)
        await sock.next()  # the initial status
        if preview_metadata:
            flags = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
            await ws.send(json.dumps(flags))
            await sock.next()
        return sock

    async def submit(
        self, prompt: dict[str, Any], client_id: str | None = "probe", **extra: Any
    ) -> str:
        body: dict[str, Any] = {"prompt": prompt, **extra}
        if client_id is not None:
            body["client_id"] = client_id
        response = await self.http.post("/prompt", json=body)
        assert response.status_code == 200, response.text
        prompt_id: str = response.json()["prompt_id"]
        return prompt_id

    async def history(self, prompt_id: str, within: float = 10) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            entry: dict[str, Any] = (await self.http.get(f"/history/{prompt_id}")).json()
            if entry:
                return entry[prompt_id]  # type: ignore[no-any-return]
            assert loop.time() < deadline, f"{prompt_id} never reached history"
            await asyncio.sleep(0.01)


async def start_sim(tmp_path: Path, **knobs: Any) -> AsyncIterator[Sim]:
    data_dir = tmp_path / "sim"
    server = SimServer(SimConfig(data_dir=data_dir, **knobs))
    await server.start()
    sim: Sim | None = None
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            sim = Sim(server, http, data_dir)
            yield sim
    finally:
        for sock in sim.sockets if sim else []:
            await sock.ws.close()
        await server.stop()


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    async for running in start_sim(tmp_path, step_ms=5, seed=1):
        yield running
