"""Budgets and the per-owner checks made in the transaction that queues a job.

A job is charged its cost (``x-comfygate.cost``) when it is queued. The charge stands
unless the job ends without having cost anything for a reason that is not the caller's:

- refunded: it expired in the queue, was canceled before any attempt started, or failed
  for a reason of ours (backend down, out of memory, lease lost, rejected graph, storage);
- kept: it succeeded, is still queued or running, was canceled after an attempt
  started, or failed with ``execution_failed`` or ``timeout`` (the caller's parameters
  made the backend work, or work too long).

Nothing is written when a job ends: the store derives the refund from the job's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from comfygate.principal import Principal

Period = Literal["day", "month"]
PERIODS: tuple[str, ...] = get_args(Period)

#: charges older than the longest period are never read again
CHARGES_KEPT = timedelta(days=32)

#: failure codes whose charge stands: the backend ran the caller's job
CHARGED_FAILURES = ("execution_failed", "timeout")


@dataclass(frozen=True)
class Budget:
    amount: float
    period: Period


@dataclass(frozen=True)
class Admission:
    """What must hold for one owner before its job is queued."""

    cost: float = 0.0
    #: jobs queued and running at once (None: no limit)
    max_active: int | None = None
    #: the budget of an owner that has none of its own (None: unlimited)
    default_budget: Budget | None = None

    @property
    def checks(self) -> bool:
        return self.max_active is not None or self.cost > 0 or self.default_budget is not None


#: never limited: the operator and the worker agents
UNLIMITED_KINDS = frozenset({"admin", "worker"})


@dataclass(frozen=True)
class QuotaPolicy:
    """Which limits a principal's submissions meet, by its kind."""

    #: jobs queued and running at once, per kind (absent or 0: no limit)
    max_active: Mapping[str, int] = field(default_factory=dict)
    #: the budget of each visitor without one of its own
    visitor_budget: Budget | None = None

    def default_budget(self, principal: Principal) -> Budget | None:
        return self.visitor_budget if principal.kind == "visitor" else None

    def admission(self, principal: Principal, cost: float) -> Admission | None:
        if principal.kind in UNLIMITED_KINDS:
            return None
        return Admission(
            cost=cost,
            max_active=self.max_active.get(principal.kind) or None,
            default_budget=self.default_budget(principal),
        )


@dataclass(frozen=True)
class Usage:
    principal_id: str
    budget: Budget | None
    used: float
    active_jobs: int
    period_start: datetime
    resets_at: datetime

    @property
    def remaining(self) -> float | None:
        if self.budget is None:
            return None
        return max(0.0, self.budget.amount - self.used)


def period_bounds(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """The calendar day or month (UTC) holding ``now``: [start, end)."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


def exceeds(usage: Usage, cost: float) -> bool:
    remaining = usage.remaining
    return remaining is not None and cost > 0 and cost > remaining + 1e-9


def quota_details(usage: Usage, cost: float) -> dict[str, object]:
    """The body of a 402: enough for a client to say what is left and when."""
    assert usage.budget is not None
    return {
        "cost": cost,
        "budget": usage.budget.amount,
        "period": usage.budget.period,
        "used": usage.used,
        "remaining": usage.remaining,
        "resets_at": usage.resets_at.isoformat(),
    }
