"""The backend view: states, and a cache that keeps a polling page off the backends."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from comfygate.admin.backends import BackendMonitor, Probe
from comfygate.clock import FakeClock
from comfygate.comfy.client import QueueState, SystemStats


@dataclass
class FakeAgent:
    agent_id: str = "local-0"
    pool: str = "default"
    backend: str = "http://b:1"
    connected: bool = True
    current_jobs: tuple[str, ...] = ()
    draining: bool = False
    warming: bool = False
    down: bool = False


STATS = SystemStats(
    vram_total=8, vram_free=4, ram_total=16, ram_free=8, comfyui_version="0.3", raw={}
)


class FakeProber:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[str] = []
        self.queue = QueueState(running=(), pending=())
        self.error: str | None = None
        self.gate: asyncio.Event | None = None
        self.closed = False

    async def __call__(self, url: str) -> Probe:
        self.calls.append(url)
        if self.gate is not None:
            await self.gate.wait()
        if self.error:
            return Probe(error=self.error, at=self.clock.now())
        return Probe(queue=self.queue, stats=STATS, at=self.clock.now())

    async def aclose(self) -> None:
        self.closed = True


async def test_states() -> None:
    clock = FakeClock()
    prober = FakeProber(clock)
    monitor = BackendMonitor(prober, clock, cache_s=0)
    [idle] = await monitor.view([FakeAgent()])
    assert idle.state == "idle" and idle.queue_length == 0 and idle.probe.stats == STATS
    [busy] = await monitor.view([FakeAgent(current_jobs=("j1",))])
    assert busy.state == "busy" and busy.current_jobs == ("j1",)
    prober.queue = QueueState(running=("p",), pending=("q", "r"))
    [other] = await monitor.view([FakeAgent()])  # another client's prompt keeps it busy
    assert other.state == "busy" and other.queue_length == 3
    [socketless] = await monitor.view([FakeAgent(connected=False)])
    assert socketless.state == "unreachable" and not socketless.draining
    [drained_away] = await monitor.view([FakeAgent(connected=False, draining=True)])
    assert drained_away.state == "unreachable" and drained_away.draining
    [drained] = await monitor.view([FakeAgent(current_jobs=("j1",), draining=True)])
    assert drained.state == "draining"
    [warming] = await monitor.view([FakeAgent(warming=True)])
    assert warming.state == "warming"
    [stuck] = await monitor.view([FakeAgent(down=True, draining=True)])
    assert stuck.state == "down" and drained.draining
    prober.error = "refused"
    [down] = await monitor.view([FakeAgent(current_jobs=("j1",))])
    assert down.state == "unreachable" and down.queue_length is None
    await monitor.aclose()
    assert prober.closed


async def test_answers_are_cached_and_shared() -> None:
    clock = FakeClock()
    prober = FakeProber(clock)
    monitor = BackendMonitor(prober, clock, cache_s=3)
    a, b = FakeAgent(), FakeAgent(agent_id="local-1", backend="http://b:2")
    await monitor.view([a, b])
    await monitor.view([a, b])
    assert sorted(prober.calls) == ["http://b:1", "http://b:2"]
    clock.advance(3)
    await monitor.view([a])
    assert prober.calls.count("http://b:1") == 2

    # many pages at once: one probe, everyone gets its answer
    clock.advance(3)
    prober.gate = asyncio.Event()
    views = [asyncio.create_task(monitor.view([a])) for _ in range(5)]
    await asyncio.sleep(0)
    prober.gate.set()
    done = await asyncio.gather(*views)
    assert prober.calls.count("http://b:1") == 3
    assert len({id(v[0].probe) for v in done}) == 1
