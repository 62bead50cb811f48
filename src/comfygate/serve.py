"""Running the gateway (and the demo's simulator beside it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn
from fastapi import FastAPI

from comfygate.api.app import create_app
from comfygate.config import Settings
from comfygate.gateway import build_gateway


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run the gateway's event loop: uvloop where it is installed (a dependency off
    Windows) spends about a third less CPU per loop turn."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def server_config(app: FastAPI, settings: Settings, *, port: int) -> uvicorn.Config:
    """How uvicorn serves the gateway (``comfygate serve``, and the tests' gateways)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
        lifespan="on",
        # Left alone uvicorn believes X-Forwarded-For and -Proto from 127.0.0.1: only
        # trusted_proxies may say who the client is and whether it came over https.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
    )


async def run_gateway(settings: Settings, *, on_ready: str | None = None) -> None:
    gw = await build_gateway(settings)
    server = uvicorn.Server(server_config(create_app(gw), settings, port=settings.port))
    if on_ready:

        async def announce() -> None:
            while not server.started:  # noqa: ASYNC110 - uvicorn offers only a flag
                await asyncio.sleep(0.05)
            print(on_ready, flush=True)

        task = asyncio.create_task(announce())
    await server.serve()
    if on_ready:
        task.cancel()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_simulator(
    data_dir: Path, *, step_ms: float = 50.0
) -> tuple[subprocess.Popen[bytes], str]:
    """The demo's ComfyUI: the simulator in its own process, as a real backend would be."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "comfygate",
            "sim",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--step-ms",
            str(step_ms),
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the simulator exited at start")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/system_stats", timeout=1).status_code == 200:
                return proc, url
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the simulator did not answer within 30 s")


def spawn_gateway(
    data_dir: Path,
    workflows_dir: Path,
    backends: list[str],
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    anonymous: bool = True,
    within_s: float = 30.0,
    stderr: IO[Any] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """A gateway in its own process (benchmarks, crash tests), once every backend's
    socket is up (within ``within_s``: a busy machine starts a process slowly); its log
    goes to ``stderr`` (default: ours); ``anonymous``: requests need no key, as on the demo."""
    port = port or free_port()
    args = [sys.executable, "-m", "comfygate", "serve", "--port", str(port)]
    if anonymous:
        args.append("--allow-anonymous")
    args += ["--data-dir", str(data_dir), "--workflows", str(workflows_dir)]
    for url in backends:
        args += ["--comfy", url]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the gateway exited at start")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            up: dict[str, bool] = httpx.get(f"{url}/healthz", timeout=1).json()["backends"]
            if all(up.values()) and len(up) == len(backends):
                return proc, url
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the gateway did not answer within {within_s:g} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
