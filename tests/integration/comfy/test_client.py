"""ComfyClient's HTTP calls against recorded answers of a real ComfyUI."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest

from comfygate.comfy.client import ComfyClient, QueueState
from comfygate.comfy.history import ExecutionErrorInfo, OutputRef
from comfygate.errors import BackendUnreachable, OutputMissing, PromptRejected
from tests.integration.comfy.replay import Replay
from tests.recordings import sample

pytestmark = pytest.mark.asyncio(loop_scope="module")

Event = asyncio.Event
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Event], Awaitable[None]]

ERRORS = sample("post_prompt_errors.json")
REFUSED = [name for name, case in ERRORS.items() if case["status"] == 400]


def new_id() -> str:
    return str(uuid.uuid4())


async def test_submit_sends_client_and_prompt_id(replay: Replay, comfy: ComfyClient) -> None:
    recorded = sample("post_prompt_ok.json")
    replay.prompt_answers.append((200, recorded["response"]))
    pid = recorded["response"]["prompt_id"]
    result = await comfy.submit(recorded["request"]["prompt"], prompt_id=pid, extra_data={"k": 1})
    assert (result.prompt_id, result.number) == (pid, 2)
    (sent,) = replay.seen("POST", "/prompt")
    assert sent.body == {
        "prompt": recorded["request"]["prompt"],
        "client_id": comfy.client_id,
        "prompt_id": pid,
        "extra_data": {"k": 1},
    }


async def test_client_id_defaults_to_a_fresh_hex(replay: Replay) -> None:
    a, b = ComfyClient(replay.url), ComfyClient(replay.url)
    assert a.client_id != b.client_id and len(a.client_id) == 32
    int(a.client_id, 16)
    await a.aclose()
    await b.aclose()


async def test_submit_refuses_non_canonical_prompt_ids(replay: Replay, comfy: ComfyClient) -> None:
    for bad in ("my-own-id-123", str(uuid.uuid4()).upper(), uuid.uuid4().hex):
        with pytest.raises(ValueError):
            await comfy.submit({}, prompt_id=bad)
    assert replay.requests == []


@pytest.mark.parametrize("case", REFUSED)
async def test_every_recorded_refusal_is_prompt_rejected(
    replay: Replay, comfy: ComfyClient, case: str
) -> None:
    recorded = ERRORS[case]
    replay.prompt_answers.append((400, recorded["response"]))
    with pytest.raises(PromptRejected) as caught:
        await comfy.submit(recorded["request"].get("prompt", {}), prompt_id=new_id())
    exc = caught.value
    assert not exc.retryable
    text = json.dumps([exc.message, exc.details])
    assert "traceback" not in text and "<comfy_root>" not in text and "File " not in text
    node_errors = recorded["response"]["node_errors"]
    if node_errors:
        first_id = next(iter(node_errors))
        assert exc.node_id == first_id
        assert exc.class_type == node_errors[first_id]["class_type"]
        assert f"node {first_id}" in exc.message
    assert replay.seen("POST", "/queue") == []  # nothing was queued


async def test_refusal_message_and_details(replay: Replay, comfy: ComfyClient) -> None:
    recorded = ERRORS["value_below_min"]
    replay.prompt_answers.append((400, recorded["response"]))
    with pytest.raises(PromptRejected) as caught:
        await comfy.submit(recorded["request"].get("prompt", {}), prompt_id=new_id())
    assert caught.value.message == (
        "Prompt outputs failed validation: node 1 (EmptyImage): "
        "Value 0 smaller than min of 1 (width)"
    )
    assert caught.value.details == [
        {
            "node_id": "1",
            "class_type": "EmptyImage",
            "type": "value_smaller_than_min",
            "message": "Value 0 smaller than min of 1",
            "details": "width",
            "input_name": "width",
        }
    ]


async def test_refusal_without_node_errors_names_the_node(
    replay: Replay, comfy: ComfyClient
) -> None:
    recorded = ERRORS["unknown_class_type"]
    replay.prompt_answers.append((400, recorded["response"]))
    with pytest.raises(PromptRejected) as caught:
        await comfy.submit(recorded["request"].get("prompt", {}), prompt_id=new_id())
    exc = caught.value
    assert exc.message == "Cannot execute because node NoSuchNode does not exist. (Node ID '#2')"
    assert (exc.node_id, exc.class_type) == ("2", "NoSuchNode")
    assert exc.details[0]["type"] == "invalid_prompt"


async def test_partial_acceptance_is_taken_back(replay: Replay, comfy: ComfyClient) -> None:
    recorded = ERRORS["enum_value_not_in_list + one_valid_output"]
    pid = recorded["response"]["prompt_id"]
    replay.prompt_answers.append((200, recorded["response"]))
    with pytest.raises(PromptRejected) as caught:
        await comfy.submit(recorded["request"]["prompt"], prompt_id=pid)
    exc = caught.value
    assert (exc.node_id, exc.class_type) == ("4", "ImageScale")
    assert "only part of the workflow" in exc.message
    assert exc.details[0]["input_name"] == "upscale_method"
    (delete,) = replay.seen("POST", "/queue")
    assert delete.body == {"delete": [pid]}


async def test_500_is_a_permanent_refusal(replay: Replay, comfy: ComfyClient) -> None:
    replay.prompt_answers.append((500, ERRORS["malformed_json"]["response"]))
    with pytest.raises(PromptRejected, match="refused the request"):
        await comfy.submit({}, prompt_id=new_id())


async def test_history_of_recorded_runs(comfy: ComfyClient) -> None:
    basic = await comfy.history("ad361542-b9b7-4326-af0d-c2afd83122fe")
    assert basic is not None and basic.succeeded
    assert basic.outputs == {"3": (OutputRef("basic_00001_.png", "", "output", "images"),)}
    assert basic.prompt["1"]["class_type"] == "EmptyImage"

    cached = await comfy.history("97698c68-8c60-428b-8d92-97a1f904e920")
    assert cached is not None and cached.succeeded
    assert cached.outputs["3"][0].filename == "basic_00001_.png"  # the old file, not rewritten
    assert dict(cached.messages)["execution_cached"]["nodes"] == ["1", "2", "3"]

    scaled = await comfy.history("a48990c2-e69c-4b75-9dc7-de18a74842cf")
    assert scaled is not None
    assert scaled.outputs["3"] == (OutputRef("scaled_00001_.png", "gw/job1", "output", "images"),)
    assert scaled.outputs["4"][0].type == "temp"

    failed = await comfy.history("a58a6cad-3452-47c2-9a49-33056a047538")
    assert failed is not None and not failed.succeeded
    assert failed.error == ExecutionErrorInfo(
        "1",
        "LoadImage",
        "PIL.UnidentifiedImageError",
        "cannot identify image file 'not_really.png'",
    )
    assert "traceback" not in json.dumps(failed.messages)


async def test_history_of_unknown_prompt_is_none(comfy: ComfyClient) -> None:
    assert await comfy.history(new_id()) is None


async def test_queue_and_prompt_state(comfy: ComfyClient) -> None:
    recorded = sample("queue_interrupt.json#queue_during_run")
    running = "d59fa0b3-0b3f-487d-9e20-45df486a4a6d"
    pending = tuple(item[1] for item in recorded["queue_pending"])
    assert await comfy.queue() == QueueState(running=(running,), pending=pending)
    assert len(pending) == 3
    assert await comfy.prompt_state(running) == "running"
    assert await comfy.prompt_state(pending[1]) == "pending"
    assert await comfy.prompt_state("ad361542-b9b7-4326-af0d-c2afd83122fe") == "done"
    assert await comfy.prompt_state(new_id()) == "unknown"


async def test_interrupt_and_delete_bodies(replay: Replay, comfy: ComfyClient) -> None:
    await comfy.interrupt("p-1")
    await comfy.interrupt()
    await comfy.delete_queued(["a", "b"])
    await comfy.delete_queued([])
    assert [r.body for r in replay.seen("POST", "/interrupt")] == [{"prompt_id": "p-1"}, {}]
    assert [r.body for r in replay.seen("POST", "/queue")] == [{"delete": ["a", "b"]}]


async def test_uploads_follow_the_server_names(replay: Replay, comfy: ComfyClient) -> None:
    recorded = sample("upload_image.json")
    first = await comfy.upload_image(b"one", "probe_in.png")
    same = await comfy.upload_image(b"one", "probe_in.png")
    renamed = await comfy.upload_image(b"two", "probe_in.png")
    replaced = await comfy.upload_image(b"three", "probe_in.png", overwrite=True)
    nested = await comfy.upload_image(b"four", "probe_sub.png", subfolder="gw/job1")
    assert first == same == replaced == recorded["first"]["body"]["name"]
    assert renamed == recorded["same_name_diff_bytes"]["body"]["name"] == "probe_in (1).png"
    assert nested == "gw/job1/probe_sub.png"
    assert replay.uploads[("input", "", "probe_in.png")] == b"three"


async def test_upload_streams_an_async_iterable(replay: Replay, comfy: ComfyClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(50):
            yield bytes([i]) * 1000

    name = await comfy.upload_image(chunks(), "../../big.png", subfolder="comfygate")
    assert name == "comfygate/big.png"  # directory parts never reach the server
    data = replay.uploads[("input", "comfygate", "big.png")]
    assert data == b"".join(bytes([i]) * 1000 for i in range(50))


async def test_upload_refused(comfy: ComfyClient) -> None:
    with pytest.raises(PromptRejected, match="HTTP 400"):
        await comfy.upload_image(b"x", "x.png", subfolder="../../etc")


async def test_view_streams_with_content_type(replay: Replay, comfy: ComfyClient) -> None:
    recorded = sample("view_variants.json")["output_plain"]
    ref = OutputRef("scaled_00001_.png", "gw/job1", "output", "images")
    replay.view_gate = asyncio.Event()
    async with comfy.view(ref) as response:
        assert response.content_type == "image/png"
        assert response.content_length == recorded["len"]
        chunks = aiter(response.iter_bytes())
        # The server holds the rest back: only a streaming client gets the first bytes.
        first = await asyncio.wait_for(anext(chunks), 5)
        replay.view_gate.set()
        data = first + b"".join([chunk async for chunk in chunks])
    assert first.startswith(b"\x89PNG") and len(first) < recorded["len"]
    assert len(data) == recorded["len"]


async def test_view_of_temp_preview(comfy: ComfyClient) -> None:
    ref = OutputRef("ComfyUI_temp_ugpsh_00001_.png", "", "temp", "images")
    async with comfy.view(ref) as response:
        data = b"".join([chunk async for chunk in response.iter_bytes()])
    assert len(data) == sample("view_variants.json")["temp_preview"]["len"]


async def test_view_of_missing_file(comfy: ComfyClient) -> None:
    with pytest.raises(OutputMissing):
        async with comfy.view(OutputRef("gone_00001_.png", "", "output", "images")):
            pass


async def test_system_stats_and_object_info(comfy: ComfyClient) -> None:
    stats = await comfy.system_stats()
    assert stats.comfyui_version == "0.3.64"
    assert (stats.ram_total, stats.ram_free) == (25276502016, 24221437952)
    assert (stats.vram_total, stats.vram_free) == (25276502016, 24221437952)
    assert stats.raw["devices"][0]["name"] == "cpu"
    info = await comfy.object_info()
    assert info["SaveImage"]["output_node"] is True


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_connection_refused_is_backend_unreachable() -> None:
    async with ComfyClient(f"http://127.0.0.1:{closed_port()}", timeout=2) as comfy:
        calls: list[Any] = [
            comfy.submit({}, prompt_id=new_id()),
            comfy.history(new_id()),
            comfy.queue(),
            comfy.system_stats(),
            comfy.upload_image(b"x", "x.png"),
            comfy.interrupt(),
        ]
        for call in calls:
            with pytest.raises(BackendUnreachable) as caught:
                await call
            assert caught.value.retryable
        with pytest.raises(BackendUnreachable):
            async with comfy.view(OutputRef("a.png", "", "output", "images")):
                pass


async def test_proxy_503_is_backend_unreachable(replay: Replay, comfy: ComfyClient) -> None:
    replay.down = True
    with pytest.raises(BackendUnreachable):
        await comfy.submit({}, prompt_id=new_id())
    with pytest.raises(BackendUnreachable):
        await comfy.history(new_id())
    with pytest.raises(BackendUnreachable):
        async with comfy.view(OutputRef("scaled_00001_.png", "gw/job1", "output", "images")):
            pass


@asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[str]:
    """A loopback server speaking HTTP by hand, with a small receive buffer so that a
    slow reader holds the sender back. A handler waits on ``closing`` to hang."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.bind(("127.0.0.1", 0))
    closing = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with suppress(OSError, asyncio.IncompleteReadError):
            await handle(reader, writer, closing)
        writer.close()

    server = await asyncio.start_server(tracked, sock=sock)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        closing.set()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


def answer(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def test_a_view_may_last_longer_than_the_timeout_while_bytes_flow() -> None:
    """The timeout is per read, not for the whole file (a large video streams for
    minutes); a stream that stops for longer than it is a backend gone."""

    async def trickle(r: asyncio.StreamReader, w: asyncio.StreamWriter, closing: Event) -> None:
        while b"video" in (head := await r.readuntil(b"\r\n\r\n")):
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 20\r\n\r\n")
            for _ in range(10):
                await asyncio.sleep(0.15)
                w.write(b"xx")
                await w.drain()
        assert b"still" in head
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 20\r\n\r\nxx")
        await closing.wait()

    async with raw_server(trickle) as url, ComfyClient(url, timeout=0.5) as comfy:
        started = asyncio.get_running_loop().time()
        async with comfy.view(OutputRef("video.png", "", "output", "images")) as response:
            data = b"".join([chunk async for chunk in response.iter_bytes()])
        assert data == b"xx" * 10
        assert asyncio.get_running_loop().time() - started > 1.0  # twice the timeout
        with pytest.raises(BackendUnreachable, match="stopped sending"):
            async with comfy.view(OutputRef("still.png", "", "output", "images")) as response:
                async for _ in response.iter_bytes():
                    pass


async def test_an_upload_may_last_longer_than_the_timeout_while_the_backend_reads() -> None:
    """The answer is awaited only once the body is sent: a slow upload is no timeout."""

    async def slow_reader(r: asyncio.StreamReader, w: asyncio.StreamWriter, _: Event) -> None:
        head = (await r.readuntil(b"\r\n\r\n")).lower()
        assert b"transfer-encoding" not in head  # bytes go with their length
        length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        while length > 0:
            length -= len(await r.read(256 * 1024))
            await asyncio.sleep(0.03)
        w.write(answer("200 OK", b'{"name": "big.png", "subfolder": "", "type": "input"}'))
        await w.drain()

    async with raw_server(slow_reader) as url, ComfyClient(url, timeout=1.0) as comfy:
        started = asyncio.get_running_loop().time()
        assert await comfy.upload_image(b"\0" * 16 * 1024 * 1024, "big.png") == "big.png"
        assert asyncio.get_running_loop().time() - started > 1.5


async def test_an_upload_to_a_backend_that_stops_reading_times_out() -> None:
    async def deaf(r: asyncio.StreamReader, w: asyncio.StreamWriter, closing: Event) -> None:
        await closing.wait()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(256):
            yield b"\0" * 256 * 1024

    async with raw_server(deaf) as url, ComfyClient(url, timeout=0.5) as comfy:
        for data in (b"\0" * 64 * 1024 * 1024, chunks()):
            started = asyncio.get_running_loop().time()
            with pytest.raises(BackendUnreachable, match="stopped taking"):
                await asyncio.wait_for(comfy.upload_image(data, "big.png"), 10)
            assert asyncio.get_running_loop().time() - started < 5
