"""The one clock. Nothing else calls ``datetime.now()`` or ``time.time()``.

Tests pass a :class:`FakeClock` and advance it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

T = TypeVar("T")

#: loop turns a fake wait lets pass before it calls the wait quiet: enough for what is
#: already under way (an event in a queue, a task about to publish) to arrive
_FAKE_TURNS = 10


class Clock:
    """Wall and monotonic time, and sleeping, from one injectable place."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait_for(self, aw: Awaitable[T], seconds: float) -> T:
        """What ``aw`` gives, or TimeoutError once ``seconds`` passed without it."""
        return await asyncio.wait_for(aw, seconds)


class FakeClock(Clock):
    """A clock that moves only when told to; ``sleep`` advances it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)

    async def wait_for(self, aw: Awaitable[T], seconds: float) -> T:
        """What ``aw`` gives if it comes with what is under way already; else the
        clock moves ``seconds`` on and the wait times out at once, so a test sees a
        quiet period (a keep-alive) without waiting for one."""
        task = asyncio.ensure_future(aw)
        for _ in range(_FAKE_TURNS):
            await asyncio.sleep(0)
            if task.done():
                return task.result()
        task.cancel()
        self.advance(seconds)
        raise TimeoutError


SYSTEM_CLOCK = Clock()
