"""Running the simulator: in-process for tests (:class:`SimServer`) or as a command."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from aiohttp import web

from comfygate.clock import SYSTEM_CLOCK, Clock
from comfygate.sim.app import LogEntry, Record, create_app
from comfygate.sim.config import SimConfig


class SimServer:
    """A simulated ComfyUI on a loopback port.

    ``log`` lists the control requests received (``POST`` to /prompt, /queue, /interrupt,
    /free and /upload/image, path without any ``/api`` prefix) as ``(method, path,
    json_body)``, the body ``None`` if it was not JSON; it and ``max_concurrent`` survive
    :meth:`restart`.
    """

    def __init__(
        self,
        config: SimConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_crash: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self._clock = clock
        self._on_crash = on_crash
        self._record = Record()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> list[LogEntry]:
        return self._record.log

    @property
    def max_concurrent(self) -> int:
        return self._record.max_concurrent

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        app = create_app(
            self.config, clock=self._clock, record=self._record, on_crash=self._on_crash
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Go away like a killed ComfyUI: sockets drop, queued and running prompts are lost."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def restart(self) -> None:
        """Stop and start on the same port, with an empty queue, history and cache."""
        await self.stop()
        await self.start()


def backend_config(config: SimConfig, index: int) -> SimConfig:
    """The config of backend ``index`` of several in one process: files of its own, and
    chaos drawn from its own seed so backends do not move in lockstep."""
    seed = None if config.seed is None else config.seed + index
    return replace(config, data_dir=config.data_dir / f"backend-{index}", seed=seed)


async def start_sims(
    config: SimConfig, host: str = "127.0.0.1", port: int = 8188, backends: int = 1
) -> list[SimServer]:
    """``backends`` independent simulators on consecutive ports from ``port`` (port 0:
    any free ports). One backend keeps ``config.data_dir``; several get a folder each."""
    if backends < 1:
        raise ValueError("backends must be at least 1")
    servers: list[SimServer] = []
    try:
        for i in range(backends):
            cfg = config if backends == 1 else backend_config(config, i)
            server = SimServer(cfg, host, port + i if port else 0)
            await server.start()
            servers.append(server)
    except BaseException:
        for server in servers:
            await server.stop()
        raise
    return servers


async def run_sim(
    config: SimConfig, host: str = "127.0.0.1", port: int = 8188, backends: int = 1
) -> None:
    """Serve simulators until cancelled (Ctrl-C under ``asyncio.run``); prints one line
    per backend once all of them listen."""
    servers = await start_sims(config, host, port, backends)
    for server in servers:
        print(f"comfygate sim: simulated ComfyUI 0.3.64 at {server.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for server in servers:
            await server.stop()
