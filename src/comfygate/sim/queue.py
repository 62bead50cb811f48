"""ComfyUI's ``PromptQueue``: a heap of pending prompts, the running one, and history.

Queue items are ComfyUI's 5-lists ``[number, prompt_id, prompt, extra_data, outputs]``;
``queue_pending`` is the heap array itself, so it is not necessarily in run order.
Everything lives in memory and is gone after a restart, as in the real server.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
from collections.abc import Callable
from typing import Any

MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")

QueueItem = list[Any]


class PromptQueue:
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self.pending: list[QueueItem] = []
        self.running: dict[int, QueueItem] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.flags: dict[str, Any] = {}
        self._counter = 0
        self._wakeup = asyncio.Event()

    def put(self, item: QueueItem) -> None:
        heapq.heappush(self.pending, item)
        self._on_change()
        self._wakeup.set()

    async def wait(self) -> None:
        """Until there is a pending prompt or a flag to act on."""
        while not self.pending and not self.flags:
            self._wakeup.clear()
            await self._wakeup.wait()

    def get(self) -> tuple[QueueItem, int] | None:
        if not self.pending:
            return None
        item = heapq.heappop(self.pending)
        number = self._counter
        self.running[number] = copy.deepcopy(item)
        self._counter += 1
        self._on_change()
        return item, number

    def task_done(self, number: int, result: dict[str, Any], status: dict[str, Any]) -> None:
        prompt = self.running.pop(number)
        if len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        for key in SENSITIVE_EXTRA_DATA_KEYS:
            prompt[3].pop(key, None)
        self.history[prompt[1]] = {"prompt": prompt, "outputs": {}, "status": status, **result}
        self._on_change()

    def remaining(self) -> int:
        return len(self.pending) + len(self.running)

    def running_ids(self) -> list[str]:
        return [item[1] for item in self.running.values()]

    def wipe(self) -> None:
        self.pending = []
        self._on_change()

    def delete(self, prompt_id: Any) -> None:
        for index, item in enumerate(self.pending):
            if item[1] == prompt_id:
                if len(self.pending) == 1:
                    self.wipe()
                else:
                    self.pending.pop(index)
                    heapq.heapify(self.pending)
                self._on_change()
                return

    def get_history(
        self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1
    ) -> dict[str, Any]:
        if prompt_id is not None:
            entry = self.history.get(prompt_id)
            return {} if entry is None else {prompt_id: entry}
        out: dict[str, Any] = {}
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        for i, key in enumerate(self.history):
            if i >= offset:
                out[key] = self.history[key]
                if max_items is not None and len(out) >= max_items:
                    break
        return out

    def set_flag(self, name: str, value: Any) -> None:
        self.flags[name] = value
        self._wakeup.set()

    def take_flags(self) -> dict[str, Any]:
        flags, self.flags = self.flags, {}
        return flags
