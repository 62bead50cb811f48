"""Following one submitted prompt to its end, as the state machine of ``phases.py``.

The socket is trusted for speed, never for the outcome: when the prompt's inbox goes
quiet, its fate is read from /history and /queue. Each wait is preceded by a look at
the gateway's signals (cancel, lost lease) and at the clock (timeout, grace).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from comfygate.clock import Clock
from comfygate.comfy.history import ExecutionErrorInfo, HistoryEntry
from comfygate.comfy.messages import (
    Executed,
    Executing,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionSuccess,
    Message,
    Preview,
)
from comfygate.errors import (
    BackendRestarted,
    ExecutionFailed,
    JobError,
    JobTimeout,
    LeaseLost,
    OutOfMemory,
    WebSocketLost,
)
from comfygate.jobs.model import Lease, Progress
from comfygate.worker.interrupts import Interrupts
from comfygate.worker.mailroom import Mailroom, Wake
from comfygate.worker.outputs import EarlyFetches
from comfygate.worker.phases import Event, Phase, step
from comfygate.worker.ports import ComfyBackend
from comfygate.worker.progress import ProgressTracker
from comfygate.worker.transport.base import WorkerTransport

log = logging.getLogger(__name__)

#: how long a silent socket is trusted before /history and /queue are asked
QUIET_S = 2.0
#: the same for a prompt told to stop, which is watched more closely
STOPPING_QUIET_S = 0.5
#: at most four progress reports a second
PROGRESS_EVERY_S = 0.25
PREVIEW_EVERY_S = 0.5


class Canceled(Exception):
    """The job was canceled while the agent ran it."""


def execution_error(error: ExecutionError | ExecutionErrorInfo) -> JobError:
    """A node raised (as the socket or /history says): out of memory is worth another
    attempt (after /free), anything else would fail again."""
    node_id, class_type = error.node_id, error.node_type
    # The type's last part names the failure ("UnidentifiedImageError"); its module path
    # says nothing a client can act on.
    kind = error.exception_type.rsplit(".", 1)[-1]
    if kind == "OutOfMemoryError":
        return OutOfMemory("the backend ran out of memory", node_id=node_id, class_type=class_type)
    message = error.exception_message
    text = f"{kind}: {message}" if kind and message else (message or kind or "a node failed")
    return ExecutionFailed(text, node_id=node_id, class_type=class_type)


@dataclass(frozen=True)
class Line:
    """What following a prompt uses of its agent, and the agent's timings."""

    agent_id: str
    comfy: ComfyBackend
    transport: WorkerTransport
    clock: Clock
    mail: Mailroom
    interrupts: Interrupts
    #: QUIET_S and STOPPING_QUIET_S unless a test shortens them
    quiet_s: float
    stopping_quiet_s: float
    #: how long a prompt told to stop may run on before its job is let go
    grace_s: float


@dataclass(frozen=True)
class Signals:
    """Set by the job's heartbeats: the gateway asked for a cancel, or the lease is gone."""

    cancel: asyncio.Event
    lost: asyncio.Event


class Follow:
    """One prompt, from submission to its end: ``run`` returns the final progress when
    it succeeds, and raises ``Canceled``, ``LeaseLost`` or the job's error otherwise."""

    def __init__(
        self,
        line: Line,
        lease: Lease,
        graph: dict[str, Any],
        signals: Signals,
        early: EarlyFetches,
    ) -> None:
        self._line = line
        self._lease = lease
        self._signals = signals
        self._early = early
        self._tracker = ProgressTracker(graph)
        self.phase = Phase.QUEUED
        #: why the job FAILED, set on the move there
        self._failure: JobError | None = None
        #: set on the move to RUNNING: the timeout counts from ComfyUI's start
        self._deadline: float | None = None
        self._stop_asked_at = 0.0
        self._last_progress = self._last_preview = 0.0

    async def run(self) -> Progress:
        line, prompt_id = self._line, self._lease.prompt_id
        while True:
            await self._look()
            if self.phase.ended:
                return self._outcome()
            quiet = line.stopping_quiet_s if self.phase.stopping else line.quiet_s
            message = await line.mail.next(prompt_id, quiet)
            if message is None:
                await self._settle()
            elif not isinstance(message, Wake):
                await self._read(message)
            if self.phase.ended:
                return self._outcome()

    async def written_history(self) -> HistoryEntry | None:
        """The history entry of the prompt, once it has ended. ComfyUI sends
        execution_success before it writes the entry, and ``executing`` with no node
        after: an empty answer waits for that message (or for a quiet socket), then asks
        once more."""
        line, prompt_id = self._line, self._lease.prompt_id
        entry = await line.comfy.history(prompt_id)
        deadline = line.clock.monotonic() + line.quiet_s
        while entry is None and (left := deadline - line.clock.monotonic()) > 0:
            message = await line.mail.next(prompt_id, left)
            if message is None or (
                isinstance(message, Executing)
                and message.node is None
                and message.prompt_id == prompt_id
            ):
                entry = await line.comfy.history(prompt_id)
                break
        return entry

    def _fire(self, event: Event, failure: JobError | None = None) -> None:
        before, self.phase = self.phase, step(self.phase, event)
        if self.phase is before:
            return
        if self.phase is Phase.RUNNING:
            self._deadline = self._line.clock.monotonic() + self._lease.timeout_s
        elif self.phase is Phase.FAILED:
            self._failure = failure

    async def _look(self) -> None:
        """The gateway's signals and the clock, before each wait."""
        line = self._line
        if self._signals.lost.is_set():
            self._fire(Event.LEASE_LOST)
            return
        if self.phase.stopping and line.clock.monotonic() - self._stop_asked_at > line.grace_s:
            # Interrupts are cooperative; this one was ignored. Let the job go and keep
            # the backend out of rotation until the prompt ends.
            log.error(
                "%s: prompt %s ignored its interrupt for %g s; backend marked down",
                line.agent_id,
                self._lease.prompt_id,
                line.grace_s,
            )
            line.interrupts.ignored(self._lease.prompt_id)
            self._fire(Event.GRACE_OVER)
            return
        if self._signals.cancel.is_set():
            await self._stop_for(Event.CANCEL)
        if self._deadline is not None and line.clock.monotonic() > self._deadline:
            # Followed until it has really stopped: the backend takes no new prompt
            # while an interrupted one winds down.
            await self._stop_for(Event.DEADLINE)

    async def _stop_for(self, event: Event) -> None:
        before = self.phase
        self._fire(event)
        if self.phase.stopping and not before.stopping:
            self._stop_asked_at = self._line.clock.monotonic()
            if await self._line.interrupts.stop(self._lease.prompt_id) == "gone":
                self._fire(Event.GONE)

    async def _settle(self) -> None:
        """The socket went quiet: ask /history and /queue where the prompt is."""
        comfy, prompt_id = self._line.comfy, self._lease.prompt_id
        state = await comfy.prompt_state(prompt_id)
        if state == "pending":
            return
        if state == "running":
            self._fire(Event.STARTED)
            return
        if state != "done":
            connected = self._line.mail.up.is_set()
            self._fire(Event.FORGOTTEN, BackendRestarted() if connected else WebSocketLost())
            return
        entry = await comfy.history(prompt_id)
        if entry is not None and entry.status_str == "success":
            self._fire(Event.SUCCESS)
        elif entry is not None and entry.interrupted:
            self._fire(Event.ENDED_INTERRUPTED)
        elif entry is not None and entry.error is not None:
            self._fire(Event.ENDED_BADLY, execution_error(entry.error))
        else:
            self._fire(Event.ENDED_BADLY, ExecutionFailed("the prompt ended without success"))

    async def _read(self, message: Message) -> None:
        prompt_id = getattr(message, "prompt_id", None)
        if prompt_id is not None and prompt_id != self._lease.prompt_id:
            return
        self._fire(Event.STARTED)  # any word of the prompt says it has started
        match message:
            case ExecutionSuccess():
                self._fire(Event.SUCCESS)
            case ExecutionError():
                self._fire(Event.NODE_ERROR, execution_error(message))
            case ExecutionInterrupted():
                failure = ExecutionFailed("the backend interrupted the prompt")
                self._fire(Event.INTERRUPTED, failure)
            case Executing(node=None) if prompt_id is not None:
                pass  # the legacy "done" signal: /history tells how it ended
            case Preview():
                await self._preview(message)
            case _:
                if isinstance(message, Executed) and not self.phase.stopping:
                    self._early.executed(message.node, message.output)
                if self._tracker.feed(message):
                    await self._progress()

    async def _preview(self, message: Preview) -> None:
        now = self._line.clock.monotonic()
        if now - self._last_preview >= PREVIEW_EVERY_S:
            self._last_preview = now
            await self._line.transport.preview(
                self._lease,
                node_id=message.node_id,
                content_type=message.content_type,
                data=message.data,
            )

    async def _progress(self) -> None:
        now = self._line.clock.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            reply = await self._line.transport.progress(self._lease, self._tracker.snapshot())
            if reply.cancel:
                self._signals.cancel.set()

    def _outcome(self) -> Progress:
        match self.phase:
            case Phase.SUCCEEDED:
                return self._tracker.finish()
            case Phase.CANCELED:
                raise Canceled
            case Phase.TIMED_OUT:
                raise JobTimeout(f"the job ran longer than {self._lease.timeout_s:g} s")
            case Phase.LOST:
                raise LeaseLost
        assert self._failure is not None, f"{self.phase} without a failure"
        raise self._failure
