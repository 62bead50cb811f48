"""Retry delays: about 2 s, 8 s, 32 s, capped at 5 minutes, with ±10 % jitter."""

from __future__ import annotations

import random


def retry_delay_s(attempt: int, rng: random.Random | None = None) -> float:
    base = min(300.0, 2.0 * 4.0 ** max(0, attempt - 1))
    jitter: float = (rng or random).uniform(0.9, 1.1)
    return base * jitter
