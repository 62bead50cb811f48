"""Keeping a backend's memory in shape between jobs.

ComfyUI keeps models and cached tensors loaded, which is what makes the next job fast,
until memory runs short and a job dies with an out-of-memory error. ``POST /free``
unloads them. An agent calls it after every ``every_jobs`` jobs, or when free RAM or
VRAM falls under ``min_free_fraction`` (checked at most every ``check_every_s``), and
only while the backend is idle, so no running prompt loses its models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from comfygate.clock import Clock
from comfygate.comfy.client import SystemStats
from comfygate.errors import ComfygateError
from comfygate.worker.ports import ComfyBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HygienePolicy:
    #: 0 = never by count
    every_jobs: int = 0
    #: 0 = never by memory; 0.1 = when less than a tenth of RAM or VRAM is free
    min_free_fraction: float = 0.0
    check_every_s: float = 30.0


def short_of_memory(stats: SystemStats, min_free_fraction: float) -> bool:
    pairs = ((stats.ram_free, stats.ram_total), (stats.vram_free, stats.vram_total))
    return any(total > 0 and free / total < min_free_fraction for free, total in pairs)


class Hygiene:
    def __init__(self, comfy: ComfyBackend, clock: Clock, policy: HygienePolicy) -> None:
        self.comfy = comfy
        self.clock = clock
        self.policy = policy
        self._jobs_since_free = 0
        self._last_check: float | None = None

    async def after_job(self, *, idle: bool) -> bool:
        """Count a finished job; free the backend's memory when due and it is idle.
        True when /free was called."""
        self._jobs_since_free += 1
        if not idle:
            return False
        try:
            if self._due_by_count() or await self._due_by_memory():
                await self.comfy.free()
                log.info("freed memory on %s", self.comfy.base_url)
                self._jobs_since_free = 0
                return True
        except ComfygateError as exc:  # hygiene is best effort
            log.warning("could not free memory on %s: %s", self.comfy.base_url, exc)
        return False

    def _due_by_count(self) -> bool:
        every = self.policy.every_jobs
        return every > 0 and self._jobs_since_free >= every

    async def _due_by_memory(self) -> bool:
        if self.policy.min_free_fraction <= 0:
            return False
        now = self.clock.monotonic()
        if self._last_check is not None and now - self._last_check < self.policy.check_every_s:
            return False
        self._last_check = now
        stats = await self.comfy.system_stats()
        return short_of_memory(stats, self.policy.min_free_fraction)
