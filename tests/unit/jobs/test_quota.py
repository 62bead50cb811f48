from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from comfygate.jobs.quota import Budget, QuotaPolicy, Usage, exceeds, period_bounds
from comfygate.principal import ADMIN, LOCAL, Principal, visitor


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        (
            "day",
            "2026-11-30T14:00:00+00:00",
            "2026-11-30T00:00:00+00:00",
            "2026-12-01T00:00:00+00:00",
        ),
        (
            "month",
            "2026-11-30T14:00:00+00:00",
            "2026-11-01T00:00:00+00:00",
            "2026-12-01T00:00:00+00:00",
        ),
        (
            "month",
            "2026-12-31T23:59:59+00:00",
            "2026-12-01T00:00:00+00:00",
            "2027-01-01T00:00:00+00:00",
        ),
        (
            "day",
            "2026-02-28T23:30:00+00:00",
            "2026-02-28T00:00:00+00:00",
            "2026-03-01T00:00:00+00:00",
        ),
    ],
)
def test_periods_are_calendar_days_and_months_in_utc(
    period: str, now: str, start: str, end: str
) -> None:
    assert period_bounds(period, at(now)) == (at(start), at(end))  # type: ignore[arg-type]


def test_a_local_time_is_placed_in_its_utc_day() -> None:
    local = datetime(2026, 12, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    start, _ = period_bounds("day", local)
    assert start == datetime(2026, 11, 30, tzinfo=UTC)


def usage(amount: float | None, used: float) -> Usage:
    budget = None if amount is None else Budget(amount, "day")
    now = datetime(2026, 11, 30, tzinfo=UTC)
    return Usage("p", budget, used, 0, now, now + timedelta(days=1))


def test_a_job_may_use_exactly_what_remains() -> None:
    assert not exceeds(usage(10, 7), 3)
    assert exceeds(usage(10, 7), 3.5)
    assert usage(10, 12).remaining == 0


def test_without_a_budget_nothing_is_exceeded() -> None:
    assert not exceeds(usage(None, 1e9), 1e9)
    assert usage(None, 5).remaining is None


def test_a_free_job_passes_an_exhausted_budget() -> None:
    assert not exceeds(usage(10, 10), 0)


def test_the_policy_limits_by_kind_and_never_admins_or_workers() -> None:
    budget = Budget(100, "month")
    policy = QuotaPolicy(max_active={"visitor": 2, "key": 0}, visitor_budget=budget)
    admitted = policy.admission(visitor("v1"), 3.0)
    assert admitted is not None
    assert (admitted.max_active, admitted.default_budget, admitted.cost) == (2, budget, 3.0)
    key = policy.admission(Principal("k1", "key", frozenset()), 1.0)
    assert key is not None and key.max_active is None and key.default_budget is None
    assert policy.admission(ADMIN, 1.0) is None
    assert policy.admission(Principal("w", "worker", frozenset({"worker"})), 1.0) is None
    local = policy.admission(LOCAL, 0.0)
    assert local is not None and not local.checks
