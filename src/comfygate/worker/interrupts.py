"""Prompts an agent told to stop that have not stopped yet, and those that ignored it.

Interrupts are cooperative and can take many seconds: a prompt sent meanwhile would
queue behind one, so the agent takes no new work while any is under way. One still
running after the grace has been let go with its job, and keeps the backend down
until it ends (or the backend restarts)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from comfygate.errors import ComfygateError
from comfygate.worker.ports import ComfyBackend

log = logging.getLogger(__name__)

#: what telling a prompt to stop found: it will not run, it already finished, or it
#: was interrupted and is still to be followed until it ends
StopResult = Literal["gone", "done", "interrupting"]


class Interrupts:
    def __init__(self, comfy: ComfyBackend, name: str) -> None:
        self._comfy = comfy
        self._name = name
        self._under_way: set[str] = set()
        self._none_under_way = asyncio.Event()
        self._none_under_way.set()
        self._stuck: set[str] = set()

    @property
    def under_way(self) -> bool:
        return bool(self._under_way)

    @property
    def stuck(self) -> bool:
        """A prompt ignored its interrupt: the backend is down until it ends."""
        return bool(self._stuck)

    async def none_under_way(self) -> None:
        await self._none_under_way.wait()

    async def stop(self, prompt_id: str) -> StopResult:
        """Interrupt a running prompt or remove a pending one. A cancel that arrives
        after success changes nothing, so a finished prompt is left as it is."""
        state = await self._comfy.prompt_state(prompt_id)
        if state == "done":
            return "done"
        if state == "pending":
            await self._comfy.delete_queued([prompt_id])
            return "gone"
        if state == "running":
            await self._comfy.interrupt(prompt_id)
            self._under_way.add(prompt_id)
            self._none_under_way.clear()
            return "interrupting"
        return "gone"

    def ignored(self, prompt_id: str) -> None:
        self._stuck.add(prompt_id)

    def ended(self, prompt_id: str) -> None:
        """Its job is over: whatever stop was under way is no longer waited for here."""
        self._under_way.discard(prompt_id)
        if not self._under_way:
            self._none_under_way.set()

    async def recheck(self) -> None:
        """Ask the backend whether the prompts that ignored their interrupt have ended."""
        for prompt_id in list(self._stuck):
            with contextlib.suppress(ComfygateError):
                if await self._comfy.prompt_state(prompt_id) not in ("pending", "running"):
                    self._stuck.discard(prompt_id)
                    log.warning("%s is up again: prompt %s ended", self._name, prompt_id)
