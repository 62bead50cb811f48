"""A spooled output sent to presigned storage URLs: the parts of a multipart upload go up
several at once, each its own slice of the spool read a chunk at a time, and whatever
order storage takes them in, their ETags are joined in part order; a part that fails for
good, or the upload's cancellation, stops every part and aborts the upload once."""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from typing import IO, Any

import httpx
import pytest

from comfygate.worker.transport import presigned
from comfygate.worker.transport.presigned import PART_CONCURRENCY, PART_RETRIES, upload_spooled

CHUNK = 1000
#: not a whole number of chunks, so every part ends on a short one
PART = 4 * CHUNK + 96
#: seven parts, the last one short
DATA = random.Random(7).randbytes(6 * PART + 1234)
KEY = "outputs/j/main/1/9-0.mp4"
FOREVER = 0  # a part held until parts numbered FOREVER are done: never


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts of several chunks each, and a failed part sent again at once."""
    monkeypatch.setattr(presigned, "CHUNK", CHUNK)
    monkeypatch.setattr(presigned, "PART_RETRY_S", 0.0)


@pytest.fixture(params=["in memory", "on disk"])
def spool(request: pytest.FixtureRequest) -> Iterator[IO[bytes]]:
    """DATA spooled as the agent spools an output, left where the writing ended."""
    max_size = 2 * len(DATA) if request.param == "in memory" else 1
    with tempfile.SpooledTemporaryFile(max_size=max_size) as spool:
        spool.write(DATA)
        assert spool._rolled == (request.param == "on disk")  # type: ignore[attr-defined]
        yield spool


class Gateway:
    """Answers the agent's ``url`` with one PUT, or with parts of PART bytes."""

    def __init__(self, parts: bool = True) -> None:
        self.parts = parts
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def ask(self, call: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((call, body))
        if call != "url":
            return {}
        headers = {"Content-Type": body["content_type"]}
        url = f"http://storage/{KEY}"
        if not self.parts:
            return {"key": KEY, "url": url, "method": "PUT", "headers": headers}
        sizes = [min(PART, body["bytes"] - start) for start in range(0, body["bytes"], PART)]
        parts = [
            {
                "number": n,
                "url": f"{url}?partNumber={n}&uploadId=up",
                "method": "PUT",
                "headers": headers,
                "bytes": size,
            }
            for n, size in enumerate(sizes, start=1)
        ]
        return {"key": KEY, "upload_id": "up", "parts": parts}

    def asked(self, call: str) -> list[dict[str, Any]]:
        return [body for called, body in self.calls if called == call]


class Storage(httpx.AsyncBaseTransport):
    """Storage as the agent reaches it: each PUT body taken a chunk at a time, other
    requests going on between chunks, noting how many are in flight at once. A part in
    ``fails`` answers 503 that many times; one in ``held`` is answered only once the
    parts listed for it are stored."""

    def __init__(self) -> None:
        self.fails: dict[int, int] = {}
        self.held: dict[int, set[int]] = {}
        self.attempts: Counter[int] = Counter()
        #: what storage took, by part number (0 for a single PUT)
        self.stored: dict[int, bytes] = {}
        self.cancelled: set[int] = set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.largest_chunk = 0
        self._changed = asyncio.Condition()

    async def until(self, done: Callable[[], bool]) -> None:
        async with self._changed:
            await self._changed.wait_for(done)

    async def _note_change(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("partNumber", "0"))
        self.attempts[number] += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await self._note_change()
        try:
            body = bytearray()
            async for chunk in request.stream:  # type: ignore[union-attr]
                self.largest_chunk = max(self.largest_chunk, len(chunk))
                body += chunk
                await asyncio.sleep(0)
            held = self.held.get(number, set())
            await self.until(lambda: held <= self.stored.keys())
        except asyncio.CancelledError:
            self.cancelled.add(number)
            raise
        finally:
            self.in_flight -= 1
        if self.attempts[number] <= self.fails.get(number, 0):
            return httpx.Response(503)
        self.stored[number] = bytes(body)
        await self._note_change()
        return httpx.Response(200, headers={"etag": f'"etag-{number}"'})


class Refusing(httpx.AsyncBaseTransport):
    """Storage that answers one part 403 at once."""

    def __init__(self, storage: Storage, part: int) -> None:
        self.storage = storage
        self.part = str(part)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("partNumber") == self.part:
            return httpx.Response(403)
        return await self.storage.handle_async_request(request)


def part_of(data: bytes, number: int) -> bytes:
    return data[(number - 1) * PART : number * PART]


async def upload(storage: httpx.AsyncBaseTransport, gateway: Gateway, spool: IO[bytes]) -> str:
    async with httpx.AsyncClient(transport=storage) as http, asyncio.timeout(5):
        return await upload_spooled(http, gateway.ask, spool, len(DATA), "video/mp4")


async def test_parts_go_up_several_at_once_each_exactly_its_slice_of_the_spool(
    spool: IO[bytes],
) -> None:
    storage, gateway = Storage(), Gateway()
    storage.fails[3] = 1  # sent again while the others read on
    assert await upload(storage, gateway, spool) == KEY
    assert 1 < storage.most_in_flight <= PART_CONCURRENCY
    # A part in flight holds a chunk at a time, never the part whole.
    assert storage.largest_chunk == CHUNK
    assert sorted(storage.stored) == [1, 2, 3, 4, 5, 6, 7]
    for number, body in storage.stored.items():
        assert body == part_of(DATA, number), f"part {number}"
    assert storage.attempts[3] == 2
    [complete] = gateway.asked("parts/complete")
    assert complete == {
        "upload_id": "up",
        "bytes": len(DATA),
        "etags": [f'"etag-{n}"' for n in range(1, 8)],
    }
    assert gateway.asked("parts/abort") == []


async def test_etags_are_joined_in_part_order_when_storage_takes_the_parts_out_of_order() -> None:
    storage, gateway = Storage(), Gateway()
    # Part 1 is taken last, part 2 only after 5 and 6.
    storage.held = {1: {2, 3, 4, 5, 6, 7}, 2: {5, 6}}
    with tempfile.TemporaryFile() as spool:
        spool.write(DATA)
        await upload(storage, gateway, spool)
    assert list(storage.stored)[-1] == 1
    assert list(storage.stored).index(2) > list(storage.stored).index(6)
    [complete] = gateway.asked("parts/complete")
    assert complete["etags"] == [f'"etag-{n}"' for n in range(1, 8)]


async def test_a_part_failing_for_good_cancels_the_others_and_aborts_once(
    spool: IO[bytes],
) -> None:
    storage, gateway = Storage(), Gateway()
    storage.fails[2] = PART_RETRIES + 1
    storage.held = {1: {FOREVER}, 3: {FOREVER}, 4: {FOREVER}}
    with pytest.raises(OSError, match=r"^part 2: storage failed the upload: HTTP 503$"):
        await upload(storage, gateway, spool)
    assert storage.attempts[2] == PART_RETRIES + 1
    assert storage.cancelled == {1, 3, 4} and storage.in_flight == 0
    # No part was started once one had failed for good.
    assert set(storage.attempts) == {1, 2, 3, 4}
    assert gateway.asked("parts/abort") == [{"upload_id": "up"}]
    assert gateway.asked("parts/complete") == []


async def test_a_part_storage_refuses_stops_the_upload_with_its_own_error() -> None:
    storage, gateway = Storage(), Gateway()
    storage.held = {n: {FOREVER} for n in (1, 2, 4)}
    refusing = Refusing(storage, part=3)
    with tempfile.TemporaryFile() as spool:
        spool.write(DATA)
        with pytest.raises(OSError, match=r"^storage refused the upload: HTTP 403$"):
            await upload(refusing, gateway, spool)
    assert storage.cancelled == {1, 2, 4}
    assert gateway.asked("parts/abort") == [{"upload_id": "up"}]


async def test_cancelling_the_upload_cancels_its_parts_and_aborts_once(
    spool: IO[bytes],
) -> None:
    storage, gateway = Storage(), Gateway()
    storage.held = {n: {FOREVER} for n in range(1, 8)}
    uploading = asyncio.create_task(upload(storage, gateway, spool))
    async with asyncio.timeout(5):
        await storage.until(lambda: storage.in_flight == PART_CONCURRENCY)
    uploading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await uploading
    assert storage.cancelled == set(range(1, PART_CONCURRENCY + 1))
    assert storage.in_flight == 0
    assert gateway.asked("parts/abort") == [{"upload_id": "up"}]


async def test_a_single_put_sends_the_spool_from_its_start(spool: IO[bytes]) -> None:
    storage, gateway = Storage(), Gateway(parts=False)
    assert await upload(storage, gateway, spool) == KEY
    assert storage.stored == {0: DATA}
    assert [call for call, _ in gateway.calls] == ["url"]
