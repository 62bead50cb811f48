"""Two gateways in one process, joined by the in-process hub: what the relay sends,
reads back from the store and fans out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import pytest

from comfygate.events import relay as relay_module
from comfygate.events.broker import Deliver, MemoryHub
from comfygate.events.memory import MemoryBus, MemorySubscription
from comfygate.events.relay import Relay
from comfygate.jobs.model import LiveEvent
from tests.unit.events.fakes import FakeLog

WAIT_S = 5.0


@dataclass
class Pair:
    a: Relay
    b: Relay
    log: FakeLog


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    hub, log = MemoryHub(), FakeLog()
    a = Relay(hub.broker(), bus=MemoryBus(), log=log, origin="gw-a")
    b = Relay(hub.broker(), bus=MemoryBus(), log=log, origin="gw-b")
    await a.start()
    await b.start()
    yield Pair(a, b, log)
    await a.close()
    await b.close()


async def take(sub: MemorySubscription, n: int) -> list[LiveEvent]:
    return [await asyncio.wait_for(sub.__anext__(), WAIT_S) for _ in range(n)]


async def sentinel(
    sender: Relay, sub: MemorySubscription, log: FakeLog, owner: str = "alice"
) -> LiveEvent:
    """An event of ``owner`` (whom ``sub`` follows) that ``sender`` publishes and that
    ``sub``, on the other gateway, must receive next. Notices reach a gateway in the
    order sent and are fanned out in order, so once it arrives every notice sent before
    it has been dealt with there; its store read counts in ``log.reads``."""
    event = replace(log.append("sentinel", "status", {}), owner_id=owner)
    await sender.publish(event)
    assert await take(sub, 1) == [event]
    return event


async def test_a_stored_event_reaches_the_other_gateway_read_from_the_store(pair: Pair) -> None:
    here, there = pair.a.bus.subscribe("alice"), pair.b.bus.subscribe("alice")
    event = pair.log.append("j1", "status", {"status": "queued"})
    await pair.a.publish(event)
    assert await take(there, 1) == [event]
    assert await take(here, 1) == [event]
    # Its own notice came back to A before B's sentinel, and was ignored: A published
    # it once.
    await sentinel(pair.b, here, pair.log)
    assert here.queue.empty()


async def test_a_burst_of_notices_costs_one_read_and_keeps_its_order(pair: Pair) -> None:
    there = pair.b.bus.subscribe("alice")
    events = [
        pair.log.append("j1", "output", {"name": "a.png"}),
        pair.log.append("j1", "output", {"name": "b.png"}),
        pair.log.append("j1", "status", {"status": "succeeded"}),
    ]
    for ev in events:
        await pair.a.publish(ev)
    assert await take(there, 3) == events
    await sentinel(pair.a, there, pair.log)
    assert pair.log.reads == 2 and there.queue.empty()  # the burst's and the sentinel's


async def test_a_burst_of_notices_of_several_jobs_costs_one_read(pair: Pair) -> None:
    there = pair.b.bus.subscribe("alice")
    tick = LiveEvent(job_id="j2", owner_id="alice", type="progress", data={"value": 1})
    sent = [
        pair.log.append("j1", "status", {"status": "running"}),
        pair.log.append("j2", "status", {"status": "running"}),
        tick,
        pair.log.append("j3", "status", {"status": "queued"}),
        pair.log.append("j1", "status", {"status": "succeeded"}),
    ]
    # Published together, as a busy gateway would: their notices cross in one batch.
    await asyncio.gather(*(pair.a.publish(ev) for ev in sent))
    got = await take(there, len(sent))
    await sentinel(pair.a, there, pair.log)
    assert pair.log.reads == 2 and there.queue.empty()  # the burst's and the sentinel's
    # Each job's events in order, and the tick after the status noticed before it.
    for job in ("j1", "j2", "j3"):
        assert [e for e in got if e.job_id == job] == [e for e in sent if e.job_id == job]


async def test_live_events_carry_their_data_in_order_with_stored_ones(pair: Pair) -> None:
    there = pair.b.bus.subscribe("alice")
    running = pair.log.append("j1", "status", {"status": "running"})
    tick = LiveEvent(job_id="j1", owner_id="alice", type="progress", data={"value": 1, "max": 4})
    await pair.a.publish(running)
    await pair.a.publish(tick)
    assert await take(there, 2) == [running, tick]


async def test_nobody_following_the_owner_there_means_no_read(pair: Pair) -> None:
    bob = pair.b.bus.subscribe("bob")
    await pair.a.publish(pair.log.append("j1", "status", {"status": "queued"}))
    await sentinel(pair.a, bob, pair.log, "bob")
    # Only the sentinel's job was read: by job, as alice's notice could share its batch.
    assert pair.log.jobs_read == ["sentinel"] and bob.queue.empty()


async def test_the_all_owners_stream_hears_every_gateway(pair: Pair) -> None:
    everyone = pair.b.bus.subscribe_all()
    event = pair.log.append("j1", "status", {"status": "queued"})
    await pair.a.publish(event)
    assert await take(everyone, 1) == [event]


@pytest.mark.parametrize("bell", ["default", "cancel:j1"])
async def test_a_ring_wakes_waiters_on_the_other_gateway(pair: Pair, bell: str) -> None:
    armed = pair.b.doorbell.arm(bell)
    pair.a.doorbell.ring(bell)
    await asyncio.wait_for(armed.wait(), WAIT_S)


async def test_a_gateway_does_not_hear_its_own_ring_back(pair: Pair) -> None:
    heard_there = pair.b.doorbell.arm("default")
    pair.a.doorbell.ring("default")
    armed = pair.a.doorbell.arm("default")  # armed after the local ring
    # One send hands the ring to every gateway at once, A's own copy among them: once
    # B has heard it, A has been given it too.
    await asyncio.wait_for(heard_there.wait(), WAIT_S)
    assert not armed.is_set()


async def test_a_reconnect_wakes_every_waiter_to_look_again(pair: Pair) -> None:
    armed = [pair.b.doorbell.arm("default"), pair.b.doorbell.arm("cancel:j1")]
    pair.b.doorbell.ring_all_here()
    assert all(e.is_set() for e in armed)


async def test_garbage_on_the_channel_is_ignored(pair: Pair) -> None:
    there = pair.b.bus.subscribe("alice")
    pair.b._received("{not a notice")
    event = pair.log.append("j1", "status", {"status": "queued"})
    await pair.a.publish(event)
    assert await take(there, 1) == [event]


class FlakyBroker:
    """Down for its first ``failures`` sends."""

    max_bytes = 7999

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[str] = []
        self.sent_two = asyncio.Event()

    async def start(self, deliver: Deliver, on_reconnect: Callable[[], None]) -> None:
        pass

    async def send(self, payloads: Sequence[str]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.sent += payloads
        if len(self.sent) >= 2:
            self.sent_two.set()

    async def close(self) -> None:
        pass


async def test_notices_wait_for_a_broker_that_is_away(monkeypatch: pytest.MonkeyPatch) -> None:
    def quick(**_: float) -> Iterator[float]:
        while True:
            yield 0.001

    monkeypatch.setattr(relay_module, "backoff_delays", quick)
    broker, log = FlakyBroker(failures=3), FakeLog()
    relay = Relay(broker, bus=MemoryBus(), log=log, origin="gw-a")
    await relay.start()
    try:
        await relay.publish(log.append("j1", "status", {"status": "queued"}))
        relay.doorbell.ring("default")
        await asyncio.wait_for(broker.sent_two.wait(), WAIT_S)
        assert ['"s":1' in broker.sent[0], '"b":"default"' in broker.sent[1]] == [True, True]
    finally:
        await relay.close()
