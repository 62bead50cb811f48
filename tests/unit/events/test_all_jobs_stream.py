"""The all-jobs stream, without HTTP: each event names its job and carries a cursor
that a resume sends back; on the in-memory bus, the timeline in memory and a
FakeClock, so every quiet while (a keep-alive) passes at once."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import pytest

from comfygate.clock import FakeClock
from comfygate.events import memory
from comfygate.events.all_jobs_stream import open_all_jobs_stream
from comfygate.events.cursor import StreamCursor
from comfygate.events.memory import MemoryBus
from comfygate.events.stream import Item, Sent
from tests.unit.events.streams import take, to_end
from tests.unit.events.timeline import OWNER, Timeline

KEEPALIVE_S = 15.0


@pytest.fixture
def tl() -> Timeline:
    return Timeline(FakeClock(), MemoryBus())


def opened(tl: Timeline, last_event_id: str | None = None) -> AsyncGenerator[Item]:
    return open_all_jobs_stream(
        tl.bus, tl, tl.clock, owner_id=OWNER, last_event_id=last_event_id, keepalive_s=KEEPALIVE_S
    )


async def cursor_of(items: AsyncGenerator[Item]) -> StreamCursor:
    item = await anext(items)
    assert isinstance(item, Sent) and item.id is not None
    cursor = StreamCursor.decode(item.id)
    assert cursor is not None
    return cursor


async def test_each_event_names_its_job_and_its_id_is_a_cursor_past_it(tl: Timeline) -> None:
    a, b = tl.job(), tl.job()
    async with aclosing(opened(tl)) as items:
        await tl.publish(a, "queued")
        await tl.publish(b, "queued")
        await tl.publish(a, "running")
        assert (await cursor_of(items)).seqs == {a: 1}
        assert (await cursor_of(items)).seqs == {a: 1, b: 1}
        assert (await cursor_of(items)).seqs == {a: 2, b: 1}


async def test_a_resume_replays_what_it_had_not_sent_then_the_progress(tl: Timeline) -> None:
    a = tl.job()
    async with aclosing(opened(tl)) as items:
        await tl.publish(a, "queued")
        token = (await cursor_of(items)).encode()
    tl.clock.advance(1)
    tl.store(a, "running")  # while the client was away
    tl.clock.advance(1)
    b = tl.job()
    tl.store(b, "queued")
    async with aclosing(opened(tl, token)) as items:
        got = await take(items, 4)
    assert [g[:2] for g in got] == [("status", a), ("status", b), ("progress", a), ("keep-alive",)]
    assert [g[3] for g in got[:2]] == ["running", "queued"]


async def test_a_quiet_while_looks_in_the_store_for_the_jobs_it_follows(tl: Timeline) -> None:
    a = tl.job()
    async with aclosing(opened(tl)) as items:
        await tl.publish(a, "queued")
        await take(items, 1)
        tl.store(a, "canceled")  # as by another gateway whose notice never came
        start = tl.clock.monotonic()
        got = await take(items, 2)
        assert [g[:1] + g[3:] for g in got] == [("status", "canceled"), ("keep-alive",)]
        assert tl.clock.monotonic() - start == KEEPALIVE_S


async def test_live_only_events_carry_no_id(tl: Timeline) -> None:
    a = tl.job()
    async with aclosing(opened(tl)) as items:
        await tl.progress(a, 0.5)
        assert await take(items, 1) == [("progress", a, None, 0.5)]


async def test_a_token_that_is_no_cursor_starts_afresh(tl: Timeline) -> None:
    tl.store(tl.job(), "queued")
    async with aclosing(opened(tl, "bm90IGEgY3Vyc29y")) as items:  # "not a cursor"
        assert await take(items, 1) == [("keep-alive",)]


async def test_a_stream_too_far_behind_ends_and_unsubscribes(
    tl: Timeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "MAX_BACKLOG", 2)
    a = tl.job()
    items = opened(tl)
    for value in (0.1, 0.2, 0.3):
        await tl.progress(a, value)
    assert await to_end(items) == [("progress", a, None, 0.1), ("progress", a, None, 0.2)]
    assert tl.bus.subscribers(OWNER) == 0
