"""``comfygate worker``: one agent beside a ComfyUI, talking to the gateway over HTTP.

Its identity at the gateway is (worker key, backend URL): a restarted agent with the
same key and ComfyUI gets its recorded leases back and follows those prompts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Sequence

import aiohttp

from comfygate.clock import SYSTEM_CLOCK
from comfygate.comfy.client import ComfyClient
from comfygate.comfy.session import open_session
from comfygate.worker.agent import Agent
from comfygate.worker.transport.http import HttpTransport

log = logging.getLogger(__name__)


def build_remote_agent(
    *,
    gateway: str,
    token: str,
    comfy: str,
    pool: str | Sequence[str],
    http: aiohttp.ClientSession,
    agent_id: str | None = None,
    capacity: int = 2,
) -> tuple[Agent, HttpTransport]:
    transport = HttpTransport(gateway, token)
    agent = Agent(
        agent_id=agent_id or f"{socket.gethostname()}-{comfy}",
        pool=pool,
        comfy=ComfyClient(comfy, http=http),
        transport=transport,
        blobs=transport.blobs,
        clock=SYSTEM_CLOCK,
        capacity=capacity,
    )
    return agent, transport


async def run_worker(*, gateway: str, token: str, comfy: str, pool: str) -> None:
    """Run until SIGINT or SIGTERM; the first signal lets running jobs finish. ``pool``:
    one pool, or several comma-separated."""
    pools = [p.strip() for p in pool.split(",") if p.strip()] or ["default"]
    async with open_session() as http:
        agent, transport = build_remote_agent(
            gateway=gateway, token=token, comfy=comfy, pool=pools, http=http
        )
        task = asyncio.create_task(agent.run(), name="remote-agent")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, task.cancel)
        log.info("worker for %s in pool %r reports to %s", comfy, pool, gateway)
        try:
            await task
        except asyncio.CancelledError:
            pass
        finally:
            await transport.aclose()
