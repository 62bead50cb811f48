"""What the agent asks of a ComfyUI backend, and nothing more.

``comfy.ComfyClient`` implements it against a real server; the agent's unit tests run
on a fake (tests/unit/worker/fakes.py) typed as this port, so mypy holds the fake to
the same signatures. The port lives on the worker side because ``comfy/`` knows
nothing of jobs or agents.

Errors, as the client maps them: any call that gets no answer (or an answer unlike
ComfyUI's) raises ``BackendUnreachable``; the others are named where they can occur.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from comfygate.comfy.client import HistoryEntry, OutputRef, PromptState, SubmitResult, SystemStats
from comfygate.comfy.messages import Message


class ViewBody(Protocol):
    @property
    def content_type(self) -> str: ...

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """The file in chunks as they arrive; ``BackendUnreachable`` if it stops."""


class Viewer(Protocol):
    """What fetching outputs asks of a ComfyUI: its ``/view``."""

    def view(self, ref: OutputRef) -> AbstractAsyncContextManager[ViewBody]:
        """One output file, read while the context is open. ``OutputMissing`` when the
        backend has no such file."""


class ComfyBackend(Viewer, Protocol):
    """One ComfyUI server as an agent, its warm-up and its memory hygiene use it."""

    @property
    def base_url(self) -> str:
        """Names the backend to the gateway and in logs."""

    # -- prompts ---------------------------------------------------------------------

    async def submit(
        self, prompt: dict[str, Any], *, prompt_id: str, extra_data: dict[str, Any] | None = None
    ) -> SubmitResult:
        """Queue a graph under the agent's own ``prompt_id`` (a canonical UUID).
        ``PromptRejected`` when the backend refuses the graph, or takes only part of it
        (that part is removed again before the error)."""

    async def prompt_state(self, prompt_id: str) -> PromptState:
        """Where the prompt is: pending or running in the queue, done (in /history), or
        unknown (never submitted, or forgotten by a restart)."""

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        """The ended prompt's record; None while it is pending, running or unknown, and
        for a moment after it ends (the entry is written after ``execution_success``)."""

    async def history_ids(self, *, limit: int) -> list[str]:
        """The newest ``limit`` prompt ids in /history: empty on a fresh backend."""

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Ask the running prompt to stop (only if it is ``prompt_id``). Cooperative:
        it stops at the next node or step, or never; pending prompts are untouched."""

    async def delete_queued(self, prompt_ids: list[str]) -> None:
        """Take pending prompts out of the queue; running ones are left alone."""

    # -- the socket --------------------------------------------------------------------

    def socket(self) -> AbstractAsyncContextManager[AsyncIterable[Message]]:
        """The event stream for this client: messages of its prompts (and id-less
        previews) until the server closes it. ``BackendUnreachable`` when it cannot
        connect; ``WebSocketLost`` when it breaks mid-stream."""

    # -- files and the server ------------------------------------------------------------

    async def upload_image(self, data: bytes, filename: str, *, subfolder: str | None) -> str:
        """Put an input file on the server; returns the name a LoadImage node takes
        (the server may rename it). ``PromptRejected`` when the server refuses it."""

    async def object_info(self) -> dict[str, Any]:
        """The node catalogue, whose loaders list the model files the server has."""

    async def system_stats(self) -> SystemStats:
        """Free and total RAM and VRAM."""

    async def free(self) -> None:
        """Unload models and free cached memory."""
