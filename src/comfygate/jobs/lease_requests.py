"""Idempotent leasing for remote agents: a lease call retried with the same request id
(its answer was lost on the way) gets the lease the first call took, not a second job.

Two layers. Within one gateway the claim runs in a task of its own, so a client that
gives up mid long-poll loses nothing: its retry waits on the same task. Across gateways
the store records each lease under its request id (``JobStore.claim``), so a retry that
lands on another gateway finds it there. Both are forgotten after a few minutes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from comfygate.clock import Clock
from comfygate.jobs.model import Lease
from comfygate.jobs.ports import JobStore

log = logging.getLogger(__name__)

#: how long an answered request id is remembered; a retry comes within seconds, or
#: after the gateway was away, and past a few lease TTLs the lease is gone anyway
KEEP_S = 300.0
#: how often a gateway purges the recorded request ids
PURGE_EVERY_S = 60.0


class LeaseRequests:
    def __init__(self, clock: Clock, store: JobStore) -> None:
        self._clock = clock
        self._store = store
        self._calls: dict[tuple[str, str], tuple[float, asyncio.Task[Lease | None]]] = {}
        self._purged_at: float | None = None

    def call(
        self, worker: str, request_id: str, claim: Callable[[], Awaitable[Lease | None]]
    ) -> asyncio.Task[Lease | None]:
        """The task answering this request id, started on its first call here."""
        self._forget_old()
        key = (worker, request_id)
        known = self._calls.get(key)
        if known is not None:
            return known[1]
        purge = self._purge_due()

        async def run() -> Lease | None:
            if purge:
                await self._purge()
            return await claim()

        task = asyncio.create_task(run(), name=f"lease-{request_id}")
        self._calls[key] = (self._clock.monotonic(), task)
        return task

    def _purge_due(self) -> bool:
        now = self._clock.monotonic()
        if self._purged_at is not None and now - self._purged_at < PURGE_EVERY_S:
            return False
        self._purged_at = now
        return True

    async def _purge(self) -> None:
        try:
            await self._store.purge_lease_requests(keep_s=KEEP_S, now=self._clock.now())
        except Exception:  # a purge can wait for the next call; the lease cannot
            log.exception("purging old lease request ids failed")

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
