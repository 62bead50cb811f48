"""The rate limiter on Redis: counters shared by every gateway, exact under races."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from limits.aio.storage import Storage

from comfygate.errors import RateLimited
from comfygate.limiting.rate import KindRates, SubmitRateLimiter, close_storage, open_storage
from comfygate.principal import visitor
from tests.integration.api.helpers import IMAGE_OPS, become_visitor
from tests.integration.conftest import GatewayFactory
from tests.services import unavailable

REDIS_URL = os.environ.get("COMFYGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture
async def redis_storage() -> AsyncIterator[Storage]:
    # A prefix of its own, so runs in parallel never share counters.
    storage = open_storage(REDIS_URL, key_prefix=f"comfygate-test-{uuid.uuid4().hex}")
    try:
        alive = await storage.check()
    except Exception as exc:  # the server is not there: only CI must have it
        alive, reason = False, repr(exc)
    else:
        reason = "no answer"
    if not alive:
        await close_storage(storage)
        unavailable("Redis", f"{REDIS_URL}: {reason}")
    yield storage
    await storage.reset()
    await close_storage(storage)


async def test_a_redis_url_selects_redis_and_anything_else_memory() -> None:
    redis = open_storage("redis://127.0.0.1:6379")
    assert type(redis).__name__ == "RedisStorage"
    await close_storage(redis)
    assert type(open_storage(None)).__name__ == "MemoryStorage"
    assert type(open_storage("nats://127.0.0.1:4222")).__name__ == "MemoryStorage"


async def test_two_gateways_share_counters_exactly_under_races(redis_storage: Storage) -> None:
    rates = {"visitor": KindRates(per_principal=5)}
    # Two limiters on one Redis: two gateways behind one load balancer.
    limiters = [SubmitRateLimiter(rates, redis_storage), SubmitRateLimiter(rates, redis_storage)]
    who = visitor(f"v-{uuid.uuid4().hex}")

    async def attempt(i: int) -> bool:
        try:
            await limiters[i % 2].hit(who, "192.0.2.1")
        except RateLimited:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert sum(results) == 5


async def test_gateways_with_one_broker_url_share_a_visitors_count(
    redis_storage: Storage, start_gateway: GatewayFactory
) -> None:
    settings = {"broker_url": REDIS_URL, "limits": {"kinds": {"visitor": {"per_minute": 2}}}}
    first, second = await start_gateway(**settings), await start_gateway(**settings)
    async with first.client() as a:
        await become_visitor(a)  # a fresh visitor id: no other run shares its counter
        async with second.client(cookies=a.cookies, headers=a.headers) as b:
            codes = [
                (await a.post(IMAGE_OPS, json={"params": {}})).status_code,
                (await b.post(IMAGE_OPS, json={"params": {}})).status_code,
                (await a.post(IMAGE_OPS, json={"params": {}})).status_code,
                (await b.post(IMAGE_OPS, json={"params": {}})).status_code,
            ]
    assert codes == [202, 202, 429, 429]
