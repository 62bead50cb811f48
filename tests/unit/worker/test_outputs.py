"""Early output fetches: a head start that never changes which files a job lists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from comfygate.comfy.client import HistoryEntry, OutputRef
from comfygate.errors import OutputMissing
from comfygate.worker.outputs import EarlyFetches, collect_outputs
from tests.unit.worker.fakes import Body, DictBlobs
from tests.unit.worker.helpers import LEASE
from tests.wait import until


def ui(*names: str) -> dict[str, list[dict[str, str]]]:
    return {"images": [{"filename": n, "subfolder": "", "type": "output"} for n in names]}


def ref(name: str) -> OutputRef:
    return OutputRef(filename=name, subfolder="", type="output", kind="images")


class FakeComfy:
    """``/view`` of named files; a name in ``failing`` answers 404 that many times, a
    name in ``held`` waits for its event."""

    def __init__(self) -> None:
        self.views: list[str] = []
        self.failing: dict[str, int] = {}
        self.held: dict[str, asyncio.Event] = {}

    @asynccontextmanager
    async def view(self, r: OutputRef) -> AsyncIterator[Body]:
        self.views.append(r.filename)
        if r.filename in self.held:
            await self.held[r.filename].wait()
        if self.failing.get(r.filename, 0) > 0:
            self.failing[r.filename] -= 1
            raise OutputMissing(f"no {r.filename}")
        yield Body("image/png", r.filename.encode())


def entry(outputs: dict[str, tuple[OutputRef, ...]]) -> HistoryEntry:
    return HistoryEntry(prompt_id="p", status_str="success", completed=True, outputs=outputs)


def setup() -> tuple[FakeComfy, DictBlobs, EarlyFetches]:
    comfy, blobs = FakeComfy(), DictBlobs()
    return comfy, blobs, EarlyFetches(comfy, blobs, LEASE)


async def collect(
    comfy: FakeComfy, blobs: DictBlobs, early: EarlyFetches, history: HistoryEntry
) -> list[tuple[str, bytes]]:
    outputs = await collect_outputs(comfy, blobs, LEASE, history, early)
    return [(o.key, blobs.files[o.key]) for o in outputs]


async def test_a_file_fetched_early_is_not_fetched_again() -> None:
    comfy, blobs, early = setup()
    early.executed("9", ui("a.png", "b.png"))
    await asyncio.sleep(0)
    listed = await collect(comfy, blobs, early, entry({"9": (ref("a.png"), ref("b.png"))}))
    assert listed == [
        (f"{LEASE.outputs_prefix}/9-0.png", b"a.png"),
        (f"{LEASE.outputs_prefix}/9-1.png", b"b.png"),
    ]
    assert sorted(comfy.views) == ["a.png", "b.png"]


async def test_history_decides_when_it_lists_another_file_at_that_place() -> None:
    comfy, blobs, early = setup()
    comfy.held["stale.png"] = asyncio.Event()  # still under way when history answers
    early.executed("9", ui("stale.png"))
    await until(lambda: comfy.views == ["stale.png"], "the early fetch to start")
    history = entry({"9": (ref("real.png"),)})
    listed = await asyncio.wait_for(collect(comfy, blobs, early, history), 2)
    assert listed == [(f"{LEASE.outputs_prefix}/9-0.png", b"real.png")]


async def test_a_failed_early_fetch_is_tried_again_in_order() -> None:
    comfy, blobs, early = setup()
    comfy.failing["a.png"] = 1
    early.executed("9", ui("a.png"))
    await until(lambda: comfy.failing["a.png"] == 0, "the early fetch to fail")
    listed = await collect(comfy, blobs, early, entry({"9": (ref("a.png"),)}))
    assert listed == [(f"{LEASE.outputs_prefix}/9-0.png", b"a.png")]
    assert comfy.views == ["a.png", "a.png"]


async def test_a_file_only_history_lists_is_fetched_then() -> None:
    comfy, blobs, early = setup()  # a cached node sends no ``executed``
    listed = await collect(comfy, blobs, early, entry({"4": (ref("cached.png"),)}))
    assert listed == [(f"{LEASE.outputs_prefix}/4-0.png", b"cached.png")]


async def test_closing_stops_fetches_still_under_way() -> None:
    comfy, blobs, early = setup()
    comfy.held["slow.png"] = asyncio.Event()
    early.executed("9", ui("slow.png"))
    await until(lambda: comfy.views == ["slow.png"], "the early fetch to start")
    await asyncio.wait_for(early.aclose(), 1)
    comfy.held["slow.png"].set()
    await asyncio.sleep(0)
    assert blobs.files == {}
