"""What the ops dashboard counts: queue depth per pool and finished jobs per minute.

The store answers the counting queries (:class:`StatsStore`); :func:`throughput`
lays them out as a fixed series of minutes, so a chart needs no gap filling.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from comfygate.jobs.model import TERMINAL, JobStatus

#: the outcomes a throughput bucket counts, in a stable order
OUTCOMES: tuple[JobStatus, ...] = tuple(s for s in JobStatus if s in TERMINAL)


@dataclass(frozen=True, kw_only=True)
class PoolDepth:
    pool: str
    queued: int = 0
    #: running and canceling: jobs that hold a lease
    running: int = 0


@dataclass(frozen=True, kw_only=True)
class FinishedCount:
    """``count`` jobs reached ``status`` during minute ``minute`` (0 = the window's first)."""

    minute: int
    status: JobStatus
    count: int


@dataclass(frozen=True, kw_only=True)
class Bucket:
    start: datetime
    counts: dict[JobStatus, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class StatsStore(Protocol):
    async def pool_depths(self) -> list[PoolDepth]:
        """Queued and leased jobs per pool; pools with neither are absent."""

    async def finished_per_minute(self, *, since: datetime, until: datetime) -> list[FinishedCount]:
        """Terminal jobs with ``since <= finished_at < until``, counted per whole minute
        after ``since`` and per status."""


def window(now: datetime, minutes: int) -> tuple[datetime, datetime]:
    """The last ``minutes`` whole minutes, the current (partial) one included, so the
    newest bucket fills while it is watched."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - timedelta(minutes=minutes), end


def throughput(counts: Iterable[FinishedCount], *, since: datetime, minutes: int) -> list[Bucket]:
    buckets = [
        Bucket(start=since + timedelta(minutes=i), counts=dict.fromkeys(OUTCOMES, 0))
        for i in range(minutes)
    ]
    for c in counts:
        if 0 <= c.minute < minutes and c.status in TERMINAL:
            buckets[c.minute].counts[c.status] += c.count
    return buckets
