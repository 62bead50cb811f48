from __future__ import annotations

import asyncio

from comfygate.jobs.doorbell import Doorbell


async def test_ring_wakes_every_waiter_of_that_name_only() -> None:
    bell = Doorbell()
    loop = asyncio.get_running_loop()
    a = asyncio.create_task(bell.wait("gpu", 5))
    b = asyncio.create_task(bell.wait("gpu", 5))
    other = asyncio.create_task(bell.wait("cpu", 0.2))
    await asyncio.sleep(0)
    start = loop.time()
    bell.ring("gpu")
    await asyncio.gather(a, b)
    assert loop.time() - start < 0.1
    assert not other.done()
    await other  # times out quietly


async def test_ring_with_no_waiter_is_not_remembered() -> None:
    bell = Doorbell()
    bell.ring("gpu")
    loop = asyncio.get_running_loop()
    start = loop.time()
    await bell.wait("gpu", 0.05)
    assert loop.time() - start >= 0.04


def test_a_ring_is_echoed_to_other_gateways_but_one_from_them_is_not() -> None:
    heard: list[str] = []
    bell = Doorbell(echo=heard.append)
    bell.ring("gpu")
    bell.ring_here("cancel:j1")
    assert heard == ["gpu"]
