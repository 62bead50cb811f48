"""The thread lane: every call is served, however bursts, quiet spells and retiring
threads interleave."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from functools import partial

import pytest

from comfygate.threads import Lane

#: a bound on one burst's calls that only a lost call reaches
SERVED_WITHIN_S = 5.0


def lane_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"{name}-")]


async def wait_until(check: Callable[[], bool], within_s: float = SERVED_WITHIN_S) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_calls_after_a_burst_and_the_retirement_it_left_are_served() -> None:
    # A thread picking up calls that waited behind the burst must not be counted as
    # idle again for each: once it retires, nothing would serve the next calls.
    lane = Lane(1, "burst", idle_s=0.1)
    try:
        assert await asyncio.gather(*(lane.run(lambda: time.sleep(0.05)) for _ in range(5)))
        await wait_until(lambda: not lane_threads("burst"))
        for i in range(5):  # one at a time, as quiet traffic comes
            assert await asyncio.wait_for(lane.run(partial(int, i)), SERVED_WITHIN_S) == i
    finally:
        await lane.close()


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_bursts_idles_and_retirements_serve_every_call(seed: int) -> None:
    rnd = random.Random(seed)
    idle_s = 0.003
    made: list[int] = []
    ended: list[int] = []
    lock = threading.Lock()

    def setup() -> int:
        with lock:
            made.append(len(made))
            return made[-1]

    def teardown(resource: int) -> None:
        with lock:
            ended.append(resource)

    width = rnd.randint(1, 4)
    lane = Lane(width, f"rand{seed}", setup, teardown, idle_s=idle_s)
    retirements = 0
    try:
        for cycle in range(1500):
            burst = rnd.randint(1, 3 * width)

            def call(i: int, pause: float) -> int:
                if pause:
                    time.sleep(pause)
                assert lane.resource() is not None
                return i

            pauses = [rnd.choice((0.0, 0.0, 0.0005, 0.002)) for _ in range(burst)]
            waits = [lane.run(partial(call, i, p)) for i, p in enumerate(pauses)]
            try:
                results = await asyncio.wait_for(asyncio.gather(*waits), SERVED_WITHIN_S)
            except TimeoutError:
                pytest.fail(f"seed {seed}, cycle {cycle}: a call of a burst of {burst} hung")
            assert results == list(range(burst))
            assert len(lane_threads(f"rand{seed}")) <= width
            # Quiet spells shorter and longer than the idle time: threads stay or retire.
            before = len(ended)
            await asyncio.sleep(rnd.choice((0.0, 0.0, idle_s / 2, idle_s * 3)))
            retirements += len(ended) > before
        assert retirements > 100, "too few cycles saw a thread retire to test anything"
    finally:
        await lane.close()
    assert sorted(ended) == made, "every thread's resource is torn down when it ends"


async def test_a_failing_setup_fails_its_call_and_the_next_call_tries_again() -> None:
    attempts: list[int] = []

    def setup() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("cannot open")
        return "ready"

    lane = Lane(1, "setup", setup)
    try:
        with pytest.raises(OSError, match="cannot open"):
            await lane.run(lane.resource)
        assert await lane.run(lane.resource) == "ready"
    finally:
        await lane.close()


async def test_close_runs_the_calls_already_queued_then_ends_every_thread() -> None:
    def slow(i: int) -> int:
        time.sleep(0.01)
        return i

    lane = Lane(2, "closing")
    waits = [lane.run(partial(slow, i)) for i in range(6)]
    await lane.close()
    assert [await w for w in waits] == list(range(6))
    assert not lane_threads("closing")
