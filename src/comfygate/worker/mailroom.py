"""The backend's socket messages, sorted into one inbox per prompt the agent follows.

One socket serves all of an agent's prompts; each follower reads only its own inbox,
and waits on it with a timeout, since the socket is best effort (a quiet inbox sends
the follower to /history)."""

from __future__ import annotations

import asyncio

from comfygate.comfy.messages import ExecutionStart, Message


class Wake:
    """Put in an inbox to wake its follower at once (a cancel, a lost lease)."""


WAKE = Wake()


class Mailroom:
    def __init__(self) -> None:
        self._inboxes: dict[str, asyncio.Queue[Message | Wake]] = {}
        #: the prompt ComfyUI runs now: frames without a prompt id (previews) are its
        self._running: str | None = None
        #: set while the socket is connected
        self.up = asyncio.Event()

    @property
    def idle(self) -> bool:
        """No prompt is followed."""
        return not self._inboxes

    def open(self, prompt_id: str) -> None:
        self._inboxes[prompt_id] = asyncio.Queue()

    def close(self, prompt_id: str) -> None:
        self._inboxes.pop(prompt_id, None)

    def post(self, message: Message) -> None:
        """Into the inbox of the prompt it is about; dropped when no one follows it."""
        prompt_id = getattr(message, "prompt_id", None)
        if isinstance(message, ExecutionStart):
            self._running = prompt_id
        inbox = self._inboxes.get(prompt_id or self._running or "")
        if inbox is not None:
            inbox.put_nowait(message)

    def wake(self, prompt_id: str) -> None:
        inbox = self._inboxes.get(prompt_id)
        if inbox is not None:
            inbox.put_nowait(WAKE)

    async def next(self, prompt_id: str, timeout_s: float) -> Message | Wake | None:
        """The prompt's next message; None when none came within ``timeout_s``."""
        try:
            return await asyncio.wait_for(self._inboxes[prompt_id].get(), timeout_s)
        except TimeoutError:
            return None
