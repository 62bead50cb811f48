"""Wakes waiters the moment something they wait for happens: a job queued in a pool,
a cancel requested for a job. Waiters also poll, so a missed ring costs latency only.

With several gateways, ``echo`` carries each ring to the others (through the event
relay), where it arrives by ``ring_here``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class Doorbell:
    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._echo = echo

    def ring(self, name: str) -> None:
        self.ring_here(name)
        self.echo(name)

    def echo(self, name: str) -> None:
        """Carry a ring of ``name`` to the other gateways only."""
        if self._echo is not None:
            self._echo(name)

    def ring_here(self, name: str) -> None:
        """Wake this process's waiters only (a ring that came from another gateway)."""
        event = self._events.pop(name, None)
        if event is not None:
            event.set()

    def ring_all_here(self) -> None:
        """Wake every waiter here, to look again: rings may have been lost meanwhile."""
        events, self._events = self._events, {}
        for event in events.values():
            event.set()

    def arm(self, name: str) -> asyncio.Event:
        """The event the next ring of ``name`` sets; arm before checking, then wait,
        so a ring between the check and the wait is not missed."""
        return self._events.setdefault(name, asyncio.Event())

    async def wait(self, name: str, timeout_s: float) -> None:
        await self.wait_armed(self.arm(name), timeout_s)

    @staticmethod
    async def wait_armed(event: asyncio.Event, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    def forget(self, name: str) -> None:
        self._events.pop(name, None)
