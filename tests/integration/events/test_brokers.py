"""Each broker adapter against the real server: notices reach every gateway in
order, and a listening connection that is killed comes back by itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import asyncpg
import pytest
import redis.asyncio

from comfygate.events.broker import Broker
from comfygate.events.pg_broker import APPLICATION_NAME, PgBroker, asyncpg_dsn
from comfygate.events.redis_broker import RedisBroker
from tests.integration.events.conftest import REDIS_URL, require_redis
from tests.integration.store.conftest import throwaway_pg_database

pytestmark = pytest.mark.postgres

WAIT_S = 20.0
PROBE = "probe"


@dataclass
class Ear:
    """One gateway's side: what its broker delivered, and its reconnects."""

    heard: list[str] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)
    probed: asyncio.Event = field(default_factory=asyncio.Event)
    reconnected: asyncio.Event = field(default_factory=asyncio.Event)

    def deliver(self, payload: str) -> None:
        if payload == PROBE:  # any gateway's, any time: kept apart
            self.probed.set()
            return
        self.heard.append(payload)
        self.got.set()

    async def until(self, n: int) -> list[str]:
        async with asyncio.timeout(WAIT_S):
            while len(self.heard) < n:
                self.got.clear()
                await self.got.wait()
        return self.heard


@dataclass
class Setup:
    make: Callable[[], Broker]
    #: drops every listening connection these brokers hold
    kill: Callable[[], Awaitable[None]]


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from throwaway_pg_database()


@pytest.fixture(params=["postgres", "redis"])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")

        async def kill_pg() -> None:
            conn = await asyncpg.connect(asyncpg_dsn(url))
            try:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = $1 AND datname = current_database()",
                    APPLICATION_NAME,
                )
            finally:
                await conn.close()

        yield Setup(lambda: PgBroker(url), kill_pg)
        return
    require_redis()
    name = f"comfygate-test-{uuid.uuid4().hex[:8]}"  # kill ours only: Redis is shared

    async def kill_redis() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            for entry in await client.client_list():
                if entry.get("name") == name:
                    await client.client_kill_filter(_id=entry["id"])
        finally:
            await client.aclose()

    yield Setup(lambda: RedisBroker(REDIS_URL, client_name=name), kill_redis)


async def started(setup: Setup, ear: Ear) -> Broker:
    broker = setup.make()
    await broker.start(ear.deliver, ear.reconnected.set)
    return broker


async def send_when_up(broker: Broker, payloads: list[str]) -> None:
    """As the relay does: a broker that is reconnecting refuses for a moment."""
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                await broker.send(payloads)
                return
            except Exception:
                await asyncio.sleep(0.1)


async def listening(broker: Broker, ear: Ear) -> None:
    """Once the broker hears its own probe."""
    ear.probed.clear()
    async with asyncio.timeout(WAIT_S):
        while not ear.probed.is_set():
            await send_when_up(broker, [PROBE])
            await asyncio.sleep(0.1)


async def test_every_gateway_hears_every_notice_in_order(setup: Setup) -> None:
    a_ear, b_ear = Ear(), Ear()
    a, b = await started(setup, a_ear), await started(setup, b_ear)
    try:
        await listening(a, a_ear)
        await listening(b, b_ear)
        notices = [f'{{"n":{i}}}' for i in range(50)]
        await send_when_up(a, notices)
        assert await b_ear.until(50) == notices
        assert await a_ear.until(50) == notices  # the sender hears itself too
    finally:
        await a.close()
        await b.close()


async def test_a_killed_listening_connection_comes_back(setup: Setup) -> None:
    ear = Ear()
    broker = await started(setup, ear)
    try:
        await listening(broker, ear)
        await setup.kill()
        await asyncio.wait_for(ear.reconnected.wait(), WAIT_S)
        await listening(broker, ear)
    finally:
        await broker.close()
