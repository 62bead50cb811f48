from __future__ import annotations

from datetime import UTC, datetime, timedelta

from comfygate.jobs.model import JobStatus
from comfygate.jobs.stats import OUTCOMES, FinishedCount, throughput, window


def test_window_ends_after_the_current_minute() -> None:
    since, until = window(datetime(2026, 1, 1, 10, 30, 45, 123, tzinfo=UTC), 60)
    assert since == datetime(2026, 1, 1, 9, 31, tzinfo=UTC)
    assert until == datetime(2026, 1, 1, 10, 31, tzinfo=UTC)


def test_throughput_has_every_minute_and_every_outcome() -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    buckets = throughput(
        [
            FinishedCount(minute=0, status=JobStatus.SUCCEEDED, count=3),
            FinishedCount(minute=0, status=JobStatus.FAILED, count=1),
            FinishedCount(minute=59, status=JobStatus.EXPIRED, count=2),
            FinishedCount(minute=60, status=JobStatus.SUCCEEDED, count=9),  # out of range
            FinishedCount(minute=5, status=JobStatus.RUNNING, count=9),  # not an outcome
        ],
        since=since,
        minutes=60,
    )
    assert len(buckets) == 60
    assert [b.start for b in buckets[:2]] == [since, since + timedelta(minutes=1)]
    assert set(buckets[0].counts) == set(OUTCOMES)
    assert buckets[0].counts[JobStatus.SUCCEEDED] == 3 and buckets[0].total == 4
    assert buckets[59].counts[JobStatus.EXPIRED] == 2
    assert sum(b.total for b in buckets) == 6
