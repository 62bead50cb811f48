"""The in-process event bus of the embedded mode."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from comfygate.jobs.model import LiveEvent

#: a subscriber this far behind is cut off; it reconnects and resumes from the store
MAX_BACKLOG = 1000


class SubscriberOverflow(Exception):
    """The subscriber fell too far behind; it must resume with Last-Event-ID."""


class MemorySubscription:
    """Registered at creation, so nothing published after ``subscribe`` returns is missed."""

    def __init__(self, bus: MemoryBus, owner_id: str | None) -> None:
        self._bus = bus
        self._owner_id = owner_id
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue()
        bus._subscribers[owner_id].add(self)

    def __aiter__(self) -> MemorySubscription:
        return self

    async def __anext__(self) -> LiveEvent:
        event = await self.queue.get()
        if event is None:
            raise SubscriberOverflow
        return event

    @property
    def pending(self) -> int:
        return self.queue.qsize()

    async def aclose(self) -> None:
        subs = self._bus._subscribers.get(self._owner_id)
        if subs is not None:
            subs.discard(self)
            if not subs:
                del self._bus._subscribers[self._owner_id]


class MemoryBus:
    def __init__(self) -> None:
        #: by owner id; None holds the subscribers to every owner's events
        self._subscribers: dict[str | None, set[MemorySubscription]] = defaultdict(set)

    async def publish(self, event: LiveEvent) -> None:
        owners = self._subscribers.get(event.owner_id, ())
        for sub in [*owners, *self._subscribers.get(None, ())]:
            if sub.queue.qsize() >= MAX_BACKLOG:
                sub.queue.put_nowait(None)
                await sub.aclose()
            else:
                sub.queue.put_nowait(event)

    def listening(self, owner_id: str) -> bool:
        """Whether a subscriber here would see an event of ``owner_id``."""
        return bool(self._subscribers.get(owner_id) or self._subscribers.get(None))

    def subscribers(self, owner_id: str | None) -> int:
        """How many streams here follow ``owner_id``'s events (None: every owner's)."""
        return len(self._subscribers.get(owner_id, ()))

    def subscribe(self, owner_id: str) -> MemorySubscription:
        return MemorySubscription(self, owner_id)

    def subscribe_all(self) -> MemorySubscription:
        """Every owner's events (the ops dashboard)."""
        return MemorySubscription(self, None)
