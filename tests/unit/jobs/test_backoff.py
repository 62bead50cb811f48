from __future__ import annotations

import random

import pytest

from comfygate.jobs.backoff import retry_delay_s


@pytest.mark.parametrize(
    ("attempt", "base"), [(1, 2.0), (2, 8.0), (3, 32.0), (4, 128.0), (9, 300.0)]
)
def test_delay_grows_fourfold_with_jitter_and_a_cap(attempt: int, base: float) -> None:
    rng = random.Random(7)
    delays = [retry_delay_s(attempt, rng) for _ in range(200)]
    assert min(delays) >= base * 0.9
    assert max(delays) <= base * 1.1
    assert len({round(d, 6) for d in delays}) > 100  # jittered, not constant
