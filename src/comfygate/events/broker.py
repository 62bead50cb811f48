"""The port between gateways: text notices out, text notices in.

Adapters: PostgreSQL LISTEN/NOTIFY (``pg_broker``), Redis pub/sub (``redis_broker``),
and an in-process hub (here) that joins several gateways living in one process, for
tests. Every adapter delivers a gateway's own notices back to it too; the relay
drops those. Delivery is at most once: a notice sent while a gateway's listening
connection is down is lost, which costs latency only (waiters poll, streams catch up
from the store).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

#: called with each payload as it arrives, on the event loop; must not block
Deliver = Callable[[str], None]


class BrokerDown(Exception):
    """The broker cannot take notices now; send again later."""


class Broker(Protocol):
    #: the largest payload (UTF-8 bytes) the broker carries
    max_bytes: int

    async def start(self, deliver: Deliver, on_reconnect: Callable[[], None]) -> None:
        """Listen in the background from now on, reconnecting with backoff; returns at
        once. ``on_reconnect`` is called after a lost connection is back (notices sent
        meanwhile are gone)."""

    async def send(self, payloads: Sequence[str]) -> None:
        """Publish in this order; raises BrokerDown (or the driver's error) when
        the broker cannot take them now."""

    async def close(self) -> None: ...


def backoff_delays(first_s: float = 0.5, cap_s: float = 30.0) -> Iterator[float]:
    """Reconnect delays: doubling up to ``cap_s``, each jittered so a fleet of gateways
    does not reconnect in step."""
    delay = first_s
    while True:
        yield delay * random.uniform(0.8, 1.2)
        delay = min(delay * 2, cap_s)


class MemoryHub:
    """Several gateways in one process, each with its own broker from ``broker()``."""

    def __init__(self) -> None:
        self._members: list[HubBroker] = []

    def broker(self) -> HubBroker:
        return HubBroker(self)


class HubBroker:
    max_bytes = 8000 - 1

    def __init__(self, hub: MemoryHub) -> None:
        self._hub = hub
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver, on_reconnect: Callable[[], None]) -> None:
        self._deliver = deliver
        self._hub._members.append(self)

    async def send(self, payloads: Sequence[str]) -> None:
        loop = asyncio.get_running_loop()
        for member in self._hub._members:
            for payload in payloads:
                # Later, as from a socket: a publisher never runs its receivers inline.
                if member._deliver is not None:
                    loop.call_soon(member._deliver, payload)

    async def close(self) -> None:
        if self in self._hub._members:
            self._hub._members.remove(self)
