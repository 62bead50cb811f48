from __future__ import annotations

import asyncio

from comfygate.jobs.doorbell import Doorbell
from tests.wait import within


async def test_ring_wakes_every_waiter_of_that_name_only() -> None:
    bell = Doorbell()
    # Waits far longer than the test may take: a waiter that ends was woken by the ring.
    a = asyncio.create_task(bell.wait("gpu", 3600))
    b = asyncio.create_task(bell.wait("gpu", 3600))
    other = asyncio.create_task(bell.wait("cpu", 0.2))
    await asyncio.sleep(0)  # one step: each task runs up to its wait
    bell.ring("gpu")
    async with within("the ring to wake both waiters of gpu"):
        await asyncio.gather(a, b)
    # A wakeup of ``other`` would have been due with theirs.
    assert not other.done()
    await other  # times out quietly


async def test_ring_with_no_waiter_is_not_remembered() -> None:
    bell = Doorbell()
    bell.ring("gpu")
    assert not bell.arm("gpu").is_set()


def test_a_ring_is_echoed_to_other_gateways_but_one_from_them_is_not() -> None:
    heard: list[str] = []
    bell = Doorbell(echo=heard.append)
    bell.ring("gpu")
    bell.ring_here("cancel:j1")
    assert heard == ["gpu"]
