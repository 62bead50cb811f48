"""Reading a stream in a test: its items as plain tuples, with a bound, so a stream
that would go on forever (a FakeClock makes every quiet while instant) fails instead."""

from __future__ import annotations

from collections.abc import AsyncIterator

from comfygate.events.stream import Item, KeepAlive

#: what a test reads of a stream at most before it calls it endless
BOUND = 50

#: (type, job id, event id, status or progress value), or ("keep-alive",)
Seen = tuple[object, ...]


def seen(item: Item) -> Seen:
    if isinstance(item, KeepAlive):
        return ("keep-alive",)
    value = item.data.get("status", item.data.get("value"))
    return (item.type, item.job_id, item.id, value)


async def take(items: AsyncIterator[Item], n: int) -> list[Seen]:
    return [seen(await anext(items)) for _ in range(n)]


async def to_end(items: AsyncIterator[Item]) -> list[Seen]:
    """Every item up to the stream's end."""
    got = []
    async for item in items:
        got.append(seen(item))
        assert len(got) < BOUND, f"the stream did not end: {got}"
    return got
