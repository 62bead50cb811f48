"""Wakes waiters the moment something they wait for happens: a job queued in a pool,
a cancel requested for a job. Waiters also poll, so a missed ring costs latency only."""

from __future__ import annotations

import asyncio
import contextlib


class Doorbell:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def ring(self, name: str) -> None:
        event = self._events.pop(name, None)
        if event is not None:
            event.set()

    async def wait(self, name: str, timeout_s: float) -> None:
        event = self._events.setdefault(name, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    def forget(self, name: str) -> None:
        self._events.pop(name, None)
