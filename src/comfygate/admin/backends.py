"""The live view of the backends: what each agent holds, and what ComfyUI reports.

A dashboard polls every couple of seconds, maybe from several tabs. Each backend is
asked for ``/queue`` and ``/system_stats`` at most once per ``cache_s`` (callers
arriving meanwhile share the answer), with a short timeout, so a slow or dead
backend makes the view say ``unreachable`` rather than hang it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import aiohttp

from comfygate.clock import Clock
from comfygate.comfy.client import ComfyClient, QueueState, SystemStats
from comfygate.comfy.session import open_session

State = Literal["idle", "busy", "warming", "draining", "down", "unreachable"]

PROBE_TIMEOUT_S = 2.0
CACHE_S = 3.0


class Watched(Protocol):
    """What the view reads of an agent (``worker.agent.Agent``)."""

    @property
    def agent_id(self) -> str: ...

    @property
    def pool(self) -> str: ...

    @property
    def backend(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    @property
    def current_jobs(self) -> tuple[str, ...]: ...

    @property
    def draining(self) -> bool: ...

    @property
    def warming(self) -> bool: ...

    @property
    def down(self) -> bool: ...


@dataclass(frozen=True, kw_only=True)
class Probe:
    """One backend's answers, or why there were none."""

    queue: QueueState | None = None
    stats: SystemStats | None = None
    error: str | None = None
    at: datetime


@dataclass(frozen=True, kw_only=True)
class BackendView:
    id: str
    pool: str
    url: str
    state: State
    #: the agent's event socket to the backend is up
    connected: bool
    #: an operator drained it: it takes no new jobs (whatever its state)
    draining: bool
    current_jobs: tuple[str, ...]
    probe: Probe

    @property
    def queue_length(self) -> int | None:
        q = self.probe.queue
        return None if q is None else len(q.running) + len(q.pending)


def state_of(agent: Watched, probe: Probe) -> State:
    if probe.error is not None or not agent.connected:
        return "unreachable"
    if agent.down:
        return "down"
    if agent.draining:
        return "draining"
    if agent.warming:
        return "warming"
    queue = probe.queue
    if agent.current_jobs or (queue is not None and (queue.running or queue.pending)):
        return "busy"
    return "idle"


class Prober(Protocol):
    async def __call__(self, url: str) -> Probe: ...

    async def aclose(self) -> None: ...


class ComfyProber:
    """Asks a ComfyUI server for its queue and system stats, on its own small client so
    the agents' connections are never held up by the dashboard."""

    def __init__(self, clock: Clock, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._clock = clock
        self._timeout_s = timeout_s
        self._http: aiohttp.ClientSession | None = None

    async def __call__(self, url: str) -> Probe:
        if self._http is None:
            self._http = open_session()
        comfy = ComfyClient(url, http=self._http, timeout=self._timeout_s)
        try:
            # The client times each phase; this bounds the whole probe.
            queue, stats = await asyncio.wait_for(
                asyncio.gather(comfy.queue(), comfy.system_stats()), self._timeout_s * 2
            )
        except TimeoutError:
            return Probe(error=f"{url} did not answer in time", at=self._clock.now())
        except Exception as exc:  # any failure is "unreachable", never a 500
            return Probe(error=str(exc) or type(exc).__name__, at=self._clock.now())
        return Probe(queue=queue, stats=stats, at=self._clock.now())

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


class BackendMonitor:
    def __init__(self, prober: Prober, clock: Clock, *, cache_s: float = CACHE_S) -> None:
        self._prober = prober
        self._clock = clock
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, Probe]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def view(self, agents: Sequence[Watched]) -> list[BackendView]:
        probes = await asyncio.gather(*(self._probe(a.backend) for a in agents))
        return [
            BackendView(
                id=a.agent_id,
                pool=a.pool,
                url=a.backend,
                state=state_of(a, p),
                connected=a.connected,
                draining=a.draining,
                current_jobs=a.current_jobs,
                probe=p,
            )
            for a, p in zip(agents, probes, strict=True)
        ]

    async def aclose(self) -> None:
        await self._prober.aclose()

    def _fresh(self, url: str) -> Probe | None:
        cached = self._cache.get(url)
        if cached is not None and self._clock.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        return None

    async def _probe(self, url: str) -> Probe:
        if (probe := self._fresh(url)) is not None:
            return probe
        async with self._locks.setdefault(url, asyncio.Lock()):
            # Whoever waited on the lock finds the answer the holder just stored.
            if (probe := self._fresh(url)) is not None:
                return probe
            probe = await self._prober(url)
            self._cache[url] = (self._clock.monotonic(), probe)
            return probe
