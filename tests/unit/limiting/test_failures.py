from __future__ import annotations

import pytest

from comfygate.errors import TooManyFailedAttempts
from comfygate.limiting.failures import AuthFailures
from comfygate.limiting.rate import open_storage


async def test_an_address_is_refused_before_its_next_try_once_its_failures_are_spent() -> None:
    failures = AuthFailures(2, open_storage(None))
    for _ in range(2):
        await failures.check("10.0.0.1")
        await failures.failed("10.0.0.1")
    with pytest.raises(TooManyFailedAttempts) as refused:
        await failures.check("10.0.0.1")
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    await failures.check("10.0.0.2")


async def test_a_key_refused_from_many_addresses_is_throttled_by_its_id() -> None:
    failures = AuthFailures(2, open_storage(None))
    await failures.failed("10.0.0.1", "key-1")
    await failures.failed("10.0.0.2", "key-1")
    with pytest.raises(TooManyFailedAttempts):
        await failures.failed("10.0.0.3", "key-1")
    await failures.failed("10.0.0.4", "key-2")


async def test_zero_is_no_limit() -> None:
    failures = AuthFailures(0, open_storage(None))
    for _ in range(50):
        await failures.check("10.0.0.1")
        await failures.failed("10.0.0.1", "key-1")
