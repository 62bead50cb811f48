"""In-memory stand-ins for what an agent talks to: a ComfyUI and the gateway.

``FakeComfy`` is checked against :class:`~comfygate.worker.ports.ComfyBackend` by mypy
(see ``PORT`` below); a test plays the server's part by hand: it sends the socket
messages and writes the /history entries a real ComfyUI would, so each test says
exactly which of the server's answers it is about.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from comfygate.comfy.client import PromptState, SubmitResult, SystemStats
from comfygate.comfy.history import ExecutionErrorInfo, HistoryEntry, OutputRef
from comfygate.comfy.messages import Message
from comfygate.errors import LeaseLost, WebSocketLost
from comfygate.jobs.model import HeartbeatReply, JobFailure, Lease, Lessee, OutputFile, Progress
from comfygate.worker.blobs import WorkerBlobs
from comfygate.worker.ports import ComfyBackend
from comfygate.worker.transport.base import WorkerTransport


@dataclass
class Body:
    """A /view answer held whole."""

    content_type: str
    data: bytes

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        yield self.data


class _Drop:
    """Put on a socket's queue to break it."""


class FakeComfy:
    """One ComfyUI: a queue (``pending``, ``running``), a /history, and a socket whose
    messages the test sends. ``restart()`` forgets everything, as ComfyUI does."""

    def __init__(self, base_url: str = "http://comfy.test:8188") -> None:
        self._base_url = base_url
        self.pending: list[str] = []
        self.running: str | None = None
        self.entries: dict[str, HistoryEntry] = {}
        self.files: dict[str, bytes] = {}
        #: every call, as (method, prompt id or file name), in order
        self.calls: list[tuple[str, str]] = []
        self.submitted: dict[str, dict[str, Any]] = {}
        #: an interrupt stops the running prompt at once, as a well-behaved node does
        self.heeds_interrupts = True
        self.connects = 0
        self._socket: asyncio.Queue[Message | _Drop] | None = None
        self._socket_open = asyncio.Event()

    @property
    def base_url(self) -> str:
        return self._base_url

    # -- the test's side ---------------------------------------------------------------

    def send(self, *messages: Message) -> None:
        """Messages on the open socket; lost if none is open, as on a real server."""
        for message in messages:
            if self._socket is not None:
                self._socket.put_nowait(message)

    def start(self, prompt_id: str) -> None:
        self.pending.remove(prompt_id)
        self.running = prompt_id

    def end(self, entry: HistoryEntry) -> None:
        """The prompt leaves the queue and its record is written."""
        if self.running == entry.prompt_id:
            self.running = None
        if entry.prompt_id in self.pending:
            self.pending.remove(entry.prompt_id)
        self.entries[entry.prompt_id] = entry

    def drop_socket(self) -> None:
        if self._socket is not None:
            self._socket.put_nowait(_Drop())

    async def connected(self) -> None:
        await self._socket_open.wait()

    def restart(self) -> None:
        self.pending.clear()
        self.running = None
        self.entries.clear()
        self.drop_socket()

    # -- the port ------------------------------------------------------------------------

    async def submit(
        self, prompt: dict[str, Any], *, prompt_id: str, extra_data: dict[str, Any] | None = None
    ) -> SubmitResult:
        self.calls.append(("submit", prompt_id))
        self.submitted[prompt_id] = prompt
        self.pending.append(prompt_id)
        return SubmitResult(prompt_id=prompt_id, number=float(len(self.submitted)))

    async def prompt_state(self, prompt_id: str) -> PromptState:
        self.calls.append(("prompt_state", prompt_id))
        if prompt_id in self.entries:
            return "done"
        if prompt_id == self.running:
            return "running"
        return "pending" if prompt_id in self.pending else "unknown"

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        self.calls.append(("history", prompt_id))
        return self.entries.get(prompt_id)

    async def history_ids(self, *, limit: int) -> list[str]:
        return list(self.entries)[-limit:]

    async def interrupt(self, prompt_id: str | None = None) -> None:
        self.calls.append(("interrupt", prompt_id or ""))
        running = self.running
        if self.heeds_interrupts and running is not None and prompt_id in (None, running):
            self.end(interrupted(running))

    async def delete_queued(self, prompt_ids: list[str]) -> None:
        for prompt_id in prompt_ids:
            self.calls.append(("delete_queued", prompt_id))
            if prompt_id in self.pending:
                self.pending.remove(prompt_id)

    @asynccontextmanager
    async def socket(self) -> AsyncIterator[AsyncIterable[Message]]:
        self.connects += 1
        queue: asyncio.Queue[Message | _Drop] = asyncio.Queue()
        self._socket = queue
        self._socket_open.set()

        async def messages() -> AsyncIterator[Message]:
            while not isinstance(message := await queue.get(), _Drop):
                yield message
            raise WebSocketLost("the fake socket broke")

        try:
            yield messages()
        finally:
            self._socket = None
            self._socket_open.clear()

    async def upload_image(self, data: bytes, filename: str, *, subfolder: str | None) -> str:
        self.calls.append(("upload_image", filename))
        name = f"{subfolder}/{filename}" if subfolder else filename
        self.files[name] = data
        return name

    @asynccontextmanager
    async def view(self, ref: OutputRef) -> AsyncIterator[Body]:
        self.calls.append(("view", ref.filename))
        yield Body("image/png", ref.filename.encode())

    async def object_info(self) -> dict[str, Any]:
        return {}

    async def system_stats(self) -> SystemStats:
        return SystemStats(
            vram_total=1, vram_free=1, ram_total=1, ram_free=1, comfyui_version="fake", raw={}
        )

    async def free(self) -> None:
        self.calls.append(("free", ""))


#: mypy holds the fake to the port here: a method that drifts from it fails the check
PORT: Callable[[], ComfyBackend] = FakeComfy


def image(name: str) -> OutputRef:
    return OutputRef(filename=name, subfolder="", type="output", kind="images")


def succeeded(prompt_id: str, outputs: dict[str, tuple[OutputRef, ...]]) -> HistoryEntry:
    return HistoryEntry(prompt_id=prompt_id, status_str="success", completed=True, outputs=outputs)


def errored(prompt_id: str, exception_type: str, message: str, *, node_id: str) -> HistoryEntry:
    error = ExecutionErrorInfo(
        node_id=node_id,
        node_type="KSampler",
        exception_type=exception_type,
        exception_message=message,
    )
    return HistoryEntry(prompt_id=prompt_id, status_str="error", completed=False, error=error)


def interrupted(prompt_id: str) -> HistoryEntry:
    return HistoryEntry(prompt_id=prompt_id, status_str="error", completed=False, interrupted=True)


@dataclass
class Report:
    """How a job ended, as the gateway was told."""

    kind: str
    outputs: Sequence[OutputFile] = ()
    progress: Progress | None = None
    failure: JobFailure | None = None
    retryable: bool = False


@dataclass
class FakeTransport(WorkerTransport):
    """The gateway: hands out the leases a test queues, and records what it is told.

    Heartbeats happen when the test calls :meth:`beat`, :meth:`cancel` or :meth:`lose`,
    never on their own, so a test decides when the agent hears of a cancel."""

    leases: asyncio.Queue[Lease] = field(default_factory=asyncio.Queue)
    reports: list[Report] = field(default_factory=list)
    progress_sent: list[Progress] = field(default_factory=list)
    previews: list[bytes] = field(default_factory=list)
    #: the answer to the next progress report: a cancel requested meanwhile
    cancel_on_progress: bool = False
    _beats: asyncio.Queue[bool] = field(default_factory=asyncio.Queue)
    _lost: bool = False

    def beat(self) -> None:
        self._beats.put_nowait(False)

    def cancel(self) -> None:
        self._beats.put_nowait(True)

    def lose(self) -> None:
        """The lease runs out: the next heartbeat is refused."""
        self._lost = True
        self._beats.put_nowait(False)

    async def lease(
        self, lessee: Lessee, *, wait_s: float, wanted: Callable[[], bool] = lambda: True
    ) -> Lease | None:
        return await self.leases.get()

    async def adopt(self, *, agent_id: str, backend: str) -> list[Lease]:
        return []

    async def heartbeat(self, lease: Lease) -> HeartbeatReply:
        if self._lost:
            raise LeaseLost("the lease ran out")
        return HeartbeatReply(cancel=False)

    async def wait_cancel(self, lease: Lease, timeout_s: float) -> bool:
        return await self._beats.get()

    async def progress(self, lease: Lease, progress: Progress) -> HeartbeatReply:
        self.progress_sent.append(progress)
        return HeartbeatReply(cancel=self.cancel_on_progress)

    async def preview(
        self, lease: Lease, *, node_id: str | None, content_type: str, data: bytes
    ) -> None:
        self.previews.append(data)

    async def complete(
        self, lease: Lease, outputs: Sequence[OutputFile], progress: Progress | None = None
    ) -> None:
        self.reports.append(Report("complete", outputs=outputs, progress=progress))

    async def fail(self, lease: Lease, failure: JobFailure, *, retryable: bool) -> None:
        self.reports.append(Report("fail", failure=failure, retryable=retryable))

    async def canceled(self, lease: Lease) -> None:
        self.reports.append(Report("canceled"))


class DictBlobs(WorkerBlobs):
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def read(self, lease: Lease, key: str) -> bytes:
        return self.files[key]

    async def write(
        self, lease: Lease, name: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> tuple[str, int, str]:
        data = b"".join([c async for c in chunks])
        key = f"{lease.outputs_prefix}/{name}"
        self.files[key] = data
        return key, len(data), hashlib.sha256(data).hexdigest()
