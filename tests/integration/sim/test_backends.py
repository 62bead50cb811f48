"""Several simulated backends served by one ``comfygate sim --backends N`` process."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from comfygate.sim import SimConfig
from comfygate.sim.server import start_sims
from tests.integration.sim.conftest import Socket, sd_prompt


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[list[str]]:
    """The URLs of three backends from one ``comfygate sim`` process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "comfygate",
        "sim",
        "--backends",
        "3",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "sim"),
        "--step-ms",
        "20",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines = [await asyncio.wait_for(proc.stdout.readline(), 30) for _ in range(3)]
        yield [line.decode().split(" at ")[-1].strip() for line in lines]
    finally:
        proc.terminate()
        await proc.wait()


async def socket_to(url: str, client_id: str) -> Socket:
    ws = await websockets.connect(f"{url.replace('http', 'ws', 1)}/ws?clientId={client_id}")
    sock = Socket(ws)
    await sock.next()  # the initial status
    return sock


async def test_each_backend_has_its_own_queue_history_and_files(
    backends: list[str], tmp_path: Path
) -> None:
    assert len(set(backends)) == 3
    async with httpx.AsyncClient(timeout=10) as http:
        for url in backends:
            stats = (await http.get(f"{url}/system_stats")).json()
            assert stats["system"]["comfyui_version"] == "0.3.64"
        first, second, third = backends
        ws_first, ws_second = await socket_to(first, "a"), await socket_to(second, "b")
        try:
            # A long prompt runs on the first backend...
            body = {"prompt": sd_prompt(steps=1000, prefix="long"), "client_id": "a"}
            long_run = (await http.post(f"{first}/prompt", json=body)).json()
            await ws_first.until("execution_start", prompt_id=long_run["prompt_id"])
            # ...and the second's queue is empty, numbers its prompts from its own zero,
            # and runs a prompt at once instead of behind the first's.
            assert (await http.get(f"{second}/queue")).json() == {
                "queue_running": [],
                "queue_pending": [],
            }
            body = {"prompt": sd_prompt(steps=2, prefix="short"), "client_id": "b"}
            short = (await http.post(f"{second}/prompt", json=body)).json()
            assert short["number"] == long_run["number"] == 0
            await ws_second.until_done(short["prompt_id"])
            assert short["prompt_id"] in (await http.get(f"{second}/history")).json()
            assert (await http.get(f"{first}/history")).json() == {}
            # An interrupt on the third backend leaves the first's prompt running.
            await http.post(f"{third}/interrupt", json={})
            running = (await http.get(f"{first}/queue")).json()["queue_running"]
            assert [item[1] for item in running] == [long_run["prompt_id"]]
            await http.post(f"{first}/interrupt", json={})
            await ws_first.until_done(long_run["prompt_id"])
        finally:
            await ws_first.ws.close()
            await ws_second.ws.close()
    assert [p.name for p in (tmp_path / "sim" / "backend-1" / "output").iterdir()] == [
        "short_00001_.png"
    ]
    assert not (tmp_path / "sim" / "backend-0" / "output" / "short_00001_.png").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_backends_listen_on_consecutive_ports(tmp_path: Path) -> None:
    # A free port's neighbours may be taken by another process: try a few bases.
    for _ in range(20):
        base = _free_port()
        try:
            servers = await start_sims(SimConfig(data_dir=tmp_path), port=base, backends=3)
        except OSError:
            continue
        break
    else:
        pytest.fail("no three consecutive free ports in 20 tries")
    try:
        assert [s.port for s in servers] == [base, base + 1, base + 2]
    finally:
        for server in servers:
            await server.stop()


async def test_a_taken_port_fails_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        with pytest.raises(OSError):
            await start_sims(SimConfig(data_dir=tmp_path), port=port - 1, backends=2)
