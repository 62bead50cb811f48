"""One job's stream, without HTTP: the in-memory bus, the timeline in memory and a
FakeClock, so every quiet while (a keep-alive) passes at once."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace

import pytest

from comfygate.clock import FakeClock
from comfygate.errors import NotFound
from comfygate.events import memory
from comfygate.events.job_stream import open_job_stream
from comfygate.events.memory import MemoryBus
from comfygate.events.stream import Item
from comfygate.jobs.model import Job, JobEvent, Progress
from tests.unit.events.streams import take, to_end
from tests.unit.events.timeline import OWNER, Timeline

KEEPALIVE_S = 15.0


@pytest.fixture
def tl() -> Timeline:
    return Timeline(FakeClock(), MemoryBus())


async def opened(
    tl: Timeline, job_id: str, after: int = 0, viewer: str = OWNER
) -> AsyncGenerator[Item]:
    async def read(seq: int) -> tuple[list[JobEvent], Job]:
        events, job = await tl.events_and_job(job_id, seq)
        if job is None:
            raise NotFound(job_id)
        return events, job

    return await open_job_stream(
        tl.bus, tl, tl.clock, viewer_id=viewer, read=read, after=after, keepalive_s=KEEPALIVE_S
    )


async def test_it_replays_what_was_missed_up_to_the_terminal_status(tl: Timeline) -> None:
    a = tl.job()
    for status in ("queued", "running", "succeeded"):
        tl.store(a, status)
    got = await to_end(await opened(tl, a))
    assert got == [
        ("status", a, "1", "queued"),
        ("status", a, "2", "running"),
        ("status", a, "3", "succeeded"),
    ]
    assert tl.bus.subscribers(OWNER) == 0


async def test_a_resume_replays_after_its_seq_then_the_progress_then_goes_live(
    tl: Timeline,
) -> None:
    a = tl.job()
    tl.store(a, "queued")
    tl.store(a, "running")
    tl.jobs[a] = replace(tl.jobs[a], progress=Progress(value=0.5))
    items = await opened(tl, a, after=1)
    assert await take(items, 2) == [("status", a, "2", "running"), ("progress", a, None, 0.5)]
    await tl.progress(a, 0.75)
    await tl.publish(a, "succeeded")
    assert await to_end(items) == [("progress", a, None, 0.75), ("status", a, "3", "succeeded")]


async def test_a_gap_in_the_live_seqs_is_filled_from_the_store(tl: Timeline) -> None:
    a = tl.job()
    tl.store(a, "queued")
    items = await opened(tl, a)
    assert await take(items, 1) == [("status", a, "1", "queued")]
    tl.store(a, "running")  # its notice is lost
    await tl.publish(a, "succeeded")
    assert await to_end(items) == [("status", a, "2", "running"), ("status", a, "3", "succeeded")]


async def test_a_quiet_while_is_a_keep_alive_then_a_look_in_the_store(tl: Timeline) -> None:
    a = tl.job()
    tl.store(a, "queued")
    items = await opened(tl, a)
    await take(items, 1)
    start = tl.clock.monotonic()
    assert await take(items, 1) == [("keep-alive",)]
    assert tl.clock.monotonic() - start == KEEPALIVE_S
    tl.store(a, "canceled")  # as by another gateway whose notice never came
    assert await to_end(items) == [("status", a, "2", "canceled")]


async def test_events_of_other_jobs_and_old_seqs_are_passed_over(tl: Timeline) -> None:
    a, b = tl.job(), tl.job()
    tl.store(a, "queued")
    items = await opened(tl, a)
    await take(items, 1)
    await tl.publish(b, "queued")
    running = await tl.publish(a, "running")
    await tl.bus.publish(running)  # its notice twice, as after a relay's reconnect
    await tl.publish(a, "canceled")
    assert await to_end(items) == [("status", a, "2", "running"), ("status", a, "3", "canceled")]


async def test_a_stream_too_far_behind_ends_and_unsubscribes(
    tl: Timeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "MAX_BACKLOG", 2)
    a = tl.job()
    tl.store(a, "running")
    items = await opened(tl, a)
    await take(items, 2)  # running, then its progress snapshot
    for value in (0.1, 0.2, 0.3):
        await tl.progress(a, value)
    assert await to_end(items) == [("progress", a, None, 0.1), ("progress", a, None, 0.2)]
    assert tl.bus.subscribers(OWNER) == 0


async def test_an_admin_looking_on_follows_the_owners_events(tl: Timeline) -> None:
    a = tl.job()
    tl.store(a, "queued")
    async with aclosing(await opened(tl, a, viewer="admin")) as items:
        assert (tl.bus.subscribers("admin"), tl.bus.subscribers(OWNER)) == (0, 1)
        await take(items, 1)
        await tl.publish(a, "canceled")
        assert await to_end(items) == [("status", a, "2", "canceled")]


async def test_a_refused_opening_leaves_no_subscription(tl: Timeline) -> None:
    with pytest.raises(NotFound):
        await opened(tl, "no-such-job")
    assert tl.bus.subscribers(OWNER) == 0
