"""The broker on Redis pub/sub (``broker_url = redis://…``).

Pub/sub channels are global to a Redis server (not per database number): gateways
of separate deployments that share one Redis hear each other's notices, which costs
them a wasted wake-up or store read, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from redis.asyncio import Redis

from comfygate.events.broker import Deliver, backoff_delays

log = logging.getLogger(__name__)

CHANNEL = "comfygate:notices"
#: how long one read waits; a ping this often (health_check_interval) finds a dead link
READ_WAIT_S = 15.0
CONNECT_TIMEOUT_S = 5.0


class RedisBroker:
    #: Redis takes far larger messages; this only keeps a stray giant out
    max_bytes = 1 << 20

    def __init__(self, url: str, *, client_name: str = "comfygate-broker") -> None:
        self._redis = Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            health_check_interval=READ_WAIT_S,
            client_name=client_name,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self, deliver: Deliver, on_reconnect: Callable[[], None]) -> None:
        self._task = asyncio.create_task(self._listen(deliver, on_reconnect), name="redis-listen")

    async def _listen(self, deliver: Deliver, on_reconnect: Callable[[], None]) -> None:
        delays = backoff_delays()
        connected_before = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                delays = backoff_delays()
                if connected_before:
                    log.warning("broker: subscribed to Redis again")
                    on_reconnect()
                connected_before = True
                while True:
                    message = await pubsub.get_message(timeout=READ_WAIT_S)
                    if message is not None and message["type"] == "message":
                        deliver(message["data"].decode("utf-8", "replace"))
            except Exception as exc:  # down, refused, reset: all mean subscribe again
                log.warning("broker: Redis subscription lost (%s); retrying", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(next(delays))

    async def send(self, payloads: Sequence[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.publish(CHANNEL, payload)
            await pipe.execute()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._redis.aclose()
