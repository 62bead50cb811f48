from __future__ import annotations

import pytest

from comfygate.events import memory
from comfygate.events.memory import MemoryBus, SubscriberOverflow
from comfygate.jobs.model import LiveEvent
from tests.wait import within


def ev(owner: str, seq: int) -> LiveEvent:
    return LiveEvent(job_id="j", owner_id=owner, type="status", data={}, seq=seq)


async def test_subscribers_see_only_their_owner_and_from_subscription_on() -> None:
    bus = MemoryBus()
    await bus.publish(ev("alice", 1))
    sub = bus.subscribe("alice")
    await bus.publish(ev("bob", 2))
    await bus.publish(ev("alice", 3))
    got = await sub.__anext__()
    assert got.seq == 3
    await sub.aclose()
    await bus.publish(ev("alice", 4))
    assert sub.queue.empty()


async def test_a_slow_subscriber_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "MAX_BACKLOG", 3)
    bus = MemoryBus()
    sub = bus.subscribe("alice")
    for i in range(5):
        await bus.publish(ev("alice", i))
    seen = []
    with pytest.raises(SubscriberOverflow):
        async with within("the subscriber to be cut off"):
            while True:
                seen.append((await sub.__anext__()).seq)
    assert seen == [0, 1, 2]


async def test_subscribe_all_sees_every_owner() -> None:
    bus = MemoryBus()
    everyone, alice = bus.subscribe_all(), bus.subscribe("alice")
    await bus.publish(ev("alice", 1))
    await bus.publish(ev("bob", 2))
    assert [(await everyone.__anext__()).seq for _ in range(2)] == [1, 2]
    assert (await alice.__anext__()).seq == 1 and alice.queue.empty()
    await everyone.aclose()
    await bus.publish(ev("bob", 3))
    assert everyone.queue.empty()
