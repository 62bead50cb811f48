"""Idempotent leasing for remote agents: a lease call retried with the same request id
(its answer was lost on the way) gets the lease the first call took, not a second job.

The claim runs in a task of its own, so a client that gives up mid long-poll loses
nothing: its retry waits on the same task. Kept per gateway process; a retry that
lands on another gateway leases anew and the first lease runs out to the rescuer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from comfygate.clock import Clock
from comfygate.jobs.model import Lease

#: how long an answered request id is remembered; a retry comes within seconds
KEEP_S = 120.0


class LeaseRequests:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._calls: dict[tuple[str, str], tuple[float, asyncio.Task[Lease | None]]] = {}

    def call(
        self, worker: str, request_id: str, claim: Callable[[], Awaitable[Lease | None]]
    ) -> asyncio.Task[Lease | None]:
        """The task answering this request id, started on its first call."""
        self._forget_old()
        key = (worker, request_id)
        known = self._calls.get(key)
        if known is not None:
            return known[1]

        async def run() -> Lease | None:
            return await claim()

        task = asyncio.create_task(run(), name=f"lease-{request_id}")
        self._calls[key] = (self._clock.monotonic(), task)
        return task

    def _forget_old(self) -> None:
        now = self._clock.monotonic()
        for key, (started, task) in list(self._calls.items()):
            if task.done() and now - started > KEEP_S:
                del self._calls[key]

    async def close(self) -> None:
        for _, task in self._calls.values():
            task.cancel()
        for _, task in self._calls.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._calls.clear()
