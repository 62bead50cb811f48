"""One agent per ComfyUI backend: lease a job, run it, report through the fence.

The agent keeps one WebSocket to its backend open across jobs. It never trusts the
socket alone: when it goes quiet, the prompt's fate is read from /history and /queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from comfygate.clock import Clock
from comfygate.comfy.client import HistoryEntry
from comfygate.comfy.graph import set_input, set_output_prefix
from comfygate.comfy.messages import (
    Executed,
    Executing,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Message,
    Preview,
)
from comfygate.contracts.models import models_available
from comfygate.errors import (
    BackendRestarted,
    ComfygateError,
    ExecutionFailed,
    JobError,
    JobTimeout,
    LeaseLost,
    OutOfMemory,
    StorageFailed,
    WebSocketLost,
)
from comfygate.jobs.model import JobFailure, Lease, Lessee, Progress
from comfygate.storage.base import Storage
from comfygate.worker.blobs import StorageBlobs, WorkerBlobs
from comfygate.worker.hygiene import Hygiene, HygienePolicy
from comfygate.worker.outputs import EarlyFetches, collect_outputs
from comfygate.worker.ports import ComfyBackend
from comfygate.worker.progress import ProgressTracker
from comfygate.worker.transport.base import WorkerTransport
from comfygate.worker.warmup import needs_warmup, run_warmup

log = logging.getLogger(__name__)

#: how long a silent socket is trusted before /history and /queue are asked
QUIET_S = 2.0
#: the same for a prompt told to stop, which is watched more closely
STOPPING_QUIET_S = 0.5
#: at most four progress reports a second
PROGRESS_EVERY_S = 0.25
PREVIEW_EVERY_S = 0.5
#: an agent whose heartbeats have failed this long takes no new work: the rescuer will
#: soon hand its jobs to others, and leasing more would only run them twice
STOP_LEASING_AFTER_S = 20.0
#: how often the model files of the backend are read again from /object_info (and on
#: every reconnect): files added to a running ComfyUI appear in its lists
MODELS_EVERY_S = 300.0


class _Wake:
    """Put in the inbox to wake the follower at once (a cancel, a lost lease)."""


WAKE = _Wake()


def execution_error(
    exception_type: str, message: str, *, node_id: str | None, class_type: str | None
) -> JobError:
    """A node raised: out of memory is worth another attempt (after /free), anything
    else would fail again."""
    if exception_type.rsplit(".", 1)[-1] == "OutOfMemoryError":
        return OutOfMemory("the backend ran out of memory", node_id=node_id, class_type=class_type)
    # The type's last part names the failure ("UnidentifiedImageError"); its module path
    # says nothing a client can act on.
    kind = exception_type.rsplit(".", 1)[-1]
    text = f"{kind}: {message}" if kind and message else (message or kind or "a node failed")
    return ExecutionFailed(text, node_id=node_id, class_type=class_type)


def _timeout(lease: Lease) -> JobTimeout:
    return JobTimeout(f"the job ran longer than {lease.timeout_s:g} s")


class Canceled(Exception):
    """The job was canceled while the agent ran it."""


class Agent:
    def __init__(
        self,
        *,
        agent_id: str,
        pool: str | Sequence[str],
        comfy: ComfyBackend,
        transport: WorkerTransport,
        clock: Clock,
        storage: Storage | None = None,
        blobs: WorkerBlobs | None = None,
        lease_wait_s: float = 25.0,
        capacity: int = 2,
        hygiene: HygienePolicy | None = None,
        warmup: dict[str, Any] | None = None,
        warmup_timeout_s: float = 600.0,
        interrupt_grace_s: float = 60.0,
    ) -> None:
        self.agent_id = agent_id
        #: the pools it leases from; the first names it in views
        self.pools = (pool,) if isinstance(pool, str) else tuple(pool)
        if not self.pools:
            raise ValueError("an agent needs a pool")
        self.pool = self.pools[0]
        #: the model files the backend lists, and when they were read (monotonic);
        #: None until read: the gateway then offers every job
        self._models: frozenset[str] | None = None
        self._models_at: float | None = None
        self.comfy = comfy
        self.transport = transport
        if blobs is None:
            if storage is None:
                raise ValueError("an agent needs storage or blobs")
            blobs = StorageBlobs(storage)
        #: the graph and inputs in, the outputs out: shared storage or the gateway's HTTP
        self.blobs = blobs
        self.clock = clock
        self.lease_wait_s = lease_wait_s
        #: prompts this agent may have at the backend at once: one running, the rest
        #: pending in ComfyUI's own queue so the GPU never waits on the gateway
        self.capacity = capacity
        self.hygiene = Hygiene(comfy, clock, hygiene or HygienePolicy())
        #: the pool's warm-up graph, run on a freshly started backend before traffic
        self.warmup = warmup
        self.warmup_timeout_s = warmup_timeout_s
        self._warm = asyncio.Event()
        self._warm.set()
        self._warming: asyncio.Task[None] | None = None
        self._inboxes: dict[str, asyncio.Queue[Message | _Wake]] = {}
        #: prompt id → job id of the leases this agent holds now
        self._jobs: dict[str, str] = {}
        #: the prompt ComfyUI runs now: frames without a prompt id (previews) are its
        self._running_prompt: str | None = None
        self._socket_up = asyncio.Event()
        #: one slot at a time waits for work, so one ring wakes one claim per agent
        self._leasing = asyncio.Lock()
        #: since when heartbeats fail (monotonic), None while they succeed
        self._beats_failing_since: float | None = None
        #: prompts told to stop that have not ended yet: interrupts are cooperative and
        #: can take many seconds, and a prompt sent meanwhile would queue behind one
        self._interrupting: set[str] = set()
        self._no_interrupt = asyncio.Event()
        self._no_interrupt.set()
        #: interrupted prompts still running after ``interrupt_grace_s``: the backend is
        #: down until they end (or it restarts); their jobs have been let go
        self.interrupt_grace_s = interrupt_grace_s
        self.stop_leasing_after_s = STOP_LEASING_AFTER_S
        self.quiet_s = QUIET_S
        self.stopping_quiet_s = STOPPING_QUIET_S
        self._stuck: set[str] = set()
        #: cleared by an operator's drain: running jobs finish, no new work is taken
        self._accepting = asyncio.Event()
        self._accepting.set()
        self._stopping = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._socket_up.is_set()

    @property
    def backend(self) -> str:
        return self.comfy.base_url

    @property
    def current_jobs(self) -> tuple[str, ...]:
        """The jobs this agent holds a lease on now (at most ``capacity``): running on
        the backend or pending in its queue. Read-only, for the ops dashboard."""
        return tuple(self._jobs.values())

    async def run(self) -> None:
        reader = asyncio.create_task(self._read_socket(), name=f"ws-{self.agent_id}")
        try:
            try:
                adopted = await self.transport.adopt(agent_id=self.agent_id, backend=self.backend)
            except Exception:
                # Not fatal: what this agent held is rescued when its lease runs out.
                log.exception("%s could not adopt its jobs after a restart", self.agent_id)
                adopted = []
            if adopted:
                log.warning(
                    "%s follows %d job(s) again after a restart", self.agent_id, len(adopted)
                )
            await asyncio.gather(
                *(self.execute(lease, resume=True) for lease in adopted),
                *(self._slot() for _ in range(self.capacity)),
            )
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    def heartbeats_failing(self) -> bool:
        since = self._beats_failing_since
        return since is not None and self.clock.monotonic() - since >= self.stop_leasing_after_s

    @property
    def warming(self) -> bool:
        return self.connected and not self._warm.is_set()

    async def _warm_up(self) -> None:
        try:
            if self.warmup is not None and await needs_warmup(self.comfy):
                log.info("%s warms up its backend", self.agent_id)
                await run_warmup(
                    self.comfy, self.warmup, self.clock, timeout_s=self.warmup_timeout_s
                )
        except ComfygateError as exc:
            log.warning("%s could not check its backend for a warm-up: %s", self.agent_id, exc)
        finally:
            self._warm.set()

    @property
    def draining(self) -> bool:
        return not self._accepting.is_set()

    def drain(self) -> None:
        """Take no new work; what runs now finishes. For maintenance of the backend."""
        self._accepting.clear()

    def resume(self) -> None:
        self._accepting.set()

    async def _ready_for_work(self) -> None:
        """Take work only from a backend that answers, that has no interrupted prompt
        still winding down, while this agent's heartbeats get through and no operator
        drains it."""
        while True:
            await self._accepting.wait()
            await self._socket_up.wait()
            await self._warm.wait()
            await self._no_interrupt.wait()
            if self._stuck:
                await self._recheck_stuck()
                if self._stuck:
                    await self.clock.sleep(2.0)
                    continue
            if not self.heartbeats_failing():
                return
            await self.clock.sleep(1.0)

    def _wants_work(self) -> bool:
        return (
            self.connected
            and not self.draining
            and not self._stuck
            and not self._interrupting
            and not self.heartbeats_failing()
        )

    @property
    def down(self) -> bool:
        """An interrupted prompt would not stop: no new work until it ends."""
        return bool(self._stuck)

    async def _recheck_stuck(self) -> None:
        for prompt_id in list(self._stuck):
            with contextlib.suppress(ComfygateError):
                if await self.comfy.prompt_state(prompt_id) not in ("pending", "running"):
                    self._stuck.discard(prompt_id)
                    log.warning("%s is up again: prompt %s ended", self.agent_id, prompt_id)

    async def _slot(self) -> None:
        while not self._stopping.is_set():
            await self._ready_for_work()
            try:
                async with self._leasing:
                    lease = await self.transport.lease(
                        await self._lessee(),
                        wait_s=self.lease_wait_s,
                        # A waiting slot gives up when its backend goes away.
                        wanted=self._wants_work,
                    )
            except Exception:
                log.exception("lease failed; backing off")
                await self.clock.sleep(1.0)
                continue
            if lease is None:
                continue
            try:
                await self.execute(lease)
            except Exception:
                # The slot lives on; the job's lease runs out and the rescuer retries it.
                log.exception("job %s failed inside the agent", lease.job_id)

    async def _lessee(self) -> Lessee:
        """What the gateway is told when this agent asks for work."""
        now = self.clock.monotonic()
        if self._models_at is None or now - self._models_at >= MODELS_EVERY_S:
            try:
                self._models = models_available(await self.comfy.object_info())
                self._models_at = now
            except ComfygateError as exc:  # asked again on the next lease call
                log.warning("%s could not read its backend's models: %s", self.agent_id, exc)
        return Lessee(
            agent_id=self.agent_id,
            backend=self.backend,
            pools=self.pools,
            capacity=max(self.capacity - len(self._jobs), 0),
            models=self._models,
        )

    def stop(self) -> None:
        """Lease no more work; a running job finishes first."""
        self._stopping.set()

    def _dispatch(self, message: Message) -> None:
        prompt_id = getattr(message, "prompt_id", None)
        if isinstance(message, ExecutionStart):
            self._running_prompt = prompt_id
        inbox = self._inboxes.get(prompt_id or self._running_prompt or "")
        if inbox is not None:
            inbox.put_nowait(message)

    def _wake(self, lease: Lease) -> None:
        inbox = self._inboxes.get(lease.prompt_id)
        if inbox is not None:
            inbox.put_nowait(WAKE)

    async def _read_socket(self) -> None:
        delay = 0.2
        while True:
            try:
                async with self.comfy.socket() as sock:
                    if self.warmup is not None:
                        self._warm.clear()
                        self._warming = asyncio.create_task(self._warm_up(), name="warmup")
                    self._socket_up.set()
                    # A backend that was away may come back with other model files.
                    self._models_at = None
                    delay = 0.2
                    async for message in sock:
                        self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the socket is best effort; /history is the truth
                log.debug("socket to %s lost: %s", self.backend, exc)
            self._socket_up.clear()
            await self.clock.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def execute(self, lease: Lease, *, resume: bool = False) -> None:
        """Run a leased job; ``resume`` follows a prompt submitted before a restart."""
        self._inboxes[lease.prompt_id] = asyncio.Queue()
        self._jobs[lease.prompt_id] = lease.job_id
        cancel = asyncio.Event()
        lost = asyncio.Event()
        beats = asyncio.create_task(self._heartbeats(lease, cancel, lost))
        try:
            await self._run(lease, cancel, lost, resume=resume)
        except LeaseLost:
            log.info("lease on job %s lost; outputs discarded", lease.job_id)
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats
            self._inboxes.pop(lease.prompt_id, None)
            self._jobs.pop(lease.prompt_id, None)
            if not self._jobs:
                # No lease left to renew, so no heartbeat will ever clear this: whether
                # the gateway answers again is for the next lease call to find out.
                self._beats_failing_since = None
            self._interrupting.discard(lease.prompt_id)
            if not self._interrupting:
                self._no_interrupt.set()
        await self.hygiene.after_job(idle=not self._inboxes)

    async def _heartbeats(self, lease: Lease, cancel: asyncio.Event, lost: asyncio.Event) -> None:
        while True:
            try:
                if await self.transport.wait_cancel(lease, lease.heartbeat_s):
                    cancel.set()
                reply = await self.transport.heartbeat(lease)
                self._beats_failing_since = None
                if reply.cancel:
                    cancel.set()
                if cancel.is_set():
                    self._wake(lease)
            except LeaseLost:
                self._beats_failing_since = None  # the gateway answers again
                lost.set()
                self._wake(lease)
                return
            except Exception:
                log.exception("heartbeat for job %s failed", lease.job_id)
                if self._beats_failing_since is None:
                    self._beats_failing_since = self.clock.monotonic()
                await self.clock.sleep(1.0)

    async def _run(
        self, lease: Lease, cancel: asyncio.Event, lost: asyncio.Event, *, resume: bool
    ) -> None:
        early = EarlyFetches(self.comfy, self.blobs, lease)
        try:
            await self._run_fetching(lease, cancel, lost, early, resume=resume)
        finally:
            await early.aclose()

    async def _run_fetching(
        self,
        lease: Lease,
        cancel: asyncio.Event,
        lost: asyncio.Event,
        early: EarlyFetches,
        *,
        resume: bool,
    ) -> None:
        try:
            if resume:
                # Its fate is read from /history and /queue when the socket stays quiet:
                # done → collected, pending or running → followed, unknown → requeued.
                graph = await self._graph(lease)
            else:
                graph = await self._prepare(lease)
                await self.comfy.submit(
                    graph, prompt_id=lease.prompt_id, extra_data={"comfygate_job": lease.job_id}
                )
            final = await self._follow(lease, graph, cancel, lost, early)
        except Canceled:
            await self.transport.canceled(lease)
            return
        except LeaseLost:
            # Someone else owns the job now: stop our prompt, publish nothing.
            with contextlib.suppress(ComfygateError):
                await self._stop_prompt(lease)
            raise
        except JobError as exc:
            await self._fail(lease, exc)
            return
        except ComfygateError as exc:
            await self._fail(lease, ExecutionFailed(exc.message))
            return
        entry = await self._written_history(lease)
        if entry is None:
            await self._fail(lease, BackendRestarted())
            return
        try:
            outputs = await collect_outputs(self.comfy, self.blobs, lease, entry, early)
        except JobError as exc:
            await self._fail(lease, exc)
            return
        except OSError as exc:
            # Whatever was written stays out of the manifest; the sweeper removes it.
            log.warning("storing outputs of job %s failed: %s", lease.job_id, exc)
            await self._fail(lease, StorageFailed())
            return
        await self.transport.complete(lease, outputs, final)

    async def _written_history(self, lease: Lease) -> HistoryEntry | None:
        """The history entry of a prompt that has ended. ComfyUI sends execution_success
        before it writes the entry, and ``executing`` with no node after: an empty answer
        waits for that message (or for a quiet socket), then asks once more."""
        entry = await self.comfy.history(lease.prompt_id)
        deadline = self.clock.monotonic() + self.quiet_s
        while entry is None and (left := deadline - self.clock.monotonic()) > 0:
            message = await self._next_message(lease, left)
            if message is None or (
                isinstance(message, Executing)
                and message.node is None
                and message.prompt_id == lease.prompt_id
            ):
                entry = await self.comfy.history(lease.prompt_id)
                break
        return entry

    async def _graph(self, lease: Lease) -> dict[str, Any]:
        graph: dict[str, Any] = (
            lease.graph
            if lease.graph is not None
            else json.loads(await self.blobs.read(lease, lease.prompt_key))
        )
        # ComfyUI's cache is global: a per-attempt folder makes every attempt write anew.
        return set_output_prefix(graph, f"comfygate/{lease.job_id}/{lease.attempt}")

    async def _prepare(self, lease: Lease) -> dict[str, Any]:
        graph = await self._graph(lease)
        for item in lease.inputs:
            data = await self.blobs.read(lease, item.key)
            name = await self.comfy.upload_image(
                data, f"{lease.job_id}-{item.filename}", subfolder="comfygate"
            )
            for node_id, input_name in item.bindings:
                graph = set_input(graph, node_id, input_name, name)
        return graph

    async def _follow(
        self,
        lease: Lease,
        graph: dict[str, Any],
        cancel: asyncio.Event,
        lost: asyncio.Event,
        early: EarlyFetches,
    ) -> Progress:
        tracker = ProgressTracker(graph)
        # The timeout counts from ComfyUI's execution_start: time waiting in ComfyUI's
        # own queue behind another prompt is not the job's running time.
        deadline: float | None = None
        last_progress = last_preview = 0.0
        interrupted = timed_out = False
        interrupted_at = 0.0
        while True:
            if lost.is_set():
                raise LeaseLost
            if interrupted and self.clock.monotonic() - interrupted_at > self.interrupt_grace_s:
                # Interrupts are cooperative; this one was ignored. Let the job go and
                # keep the backend out of rotation until the prompt ends.
                log.error(
                    "%s: prompt %s ignored its interrupt for %g s; backend marked down",
                    self.agent_id,
                    lease.prompt_id,
                    self.interrupt_grace_s,
                )
                self._stuck.add(lease.prompt_id)
                raise _timeout(lease) if timed_out else Canceled
            if cancel.is_set() and not interrupted:
                interrupted = True
                interrupted_at = self.clock.monotonic()
                if await self._stop_prompt(lease) == "gone":
                    raise Canceled
            if deadline is not None and self.clock.monotonic() > deadline and not interrupted:
                # Followed until it has really stopped: the backend takes no new prompt
                # while an interrupted one winds down.
                interrupted = timed_out = True
                interrupted_at = self.clock.monotonic()
                if await self._stop_prompt(lease) == "gone":
                    raise _timeout(lease)
            quiet = self.stopping_quiet_s if interrupted else self.quiet_s
            message = await self._next_message(lease, quiet)
            if message is None:
                try:
                    state = await self._settled(lease, interrupted)
                except Canceled:
                    if timed_out:
                        raise _timeout(lease) from None
                    raise
                if state == "done":
                    return tracker.finish()
                if state == "running" and deadline is None:
                    deadline = self.clock.monotonic() + lease.timeout_s
                continue
            if isinstance(message, _Wake):
                continue
            prompt_id = getattr(message, "prompt_id", None)
            if prompt_id is not None and prompt_id != lease.prompt_id:
                continue
            if deadline is None:  # the first word of our prompt: it has started
                deadline = self.clock.monotonic() + lease.timeout_s
            if isinstance(message, ExecutionSuccess):
                return tracker.finish()
            if isinstance(message, ExecutionError):
                raise execution_error(
                    message.exception_type,
                    message.exception_message,
                    node_id=message.node_id,
                    class_type=message.node_type,
                )
            if isinstance(message, ExecutionInterrupted):
                if timed_out:
                    raise _timeout(lease)
                if interrupted:
                    raise Canceled
                raise ExecutionFailed("the backend interrupted the prompt")
            if isinstance(message, Executed) and not interrupted:
                early.executed(message.node, message.output)
            if isinstance(message, Executing) and message.node is None and prompt_id is not None:
                # Legacy "done" signal without success/error seen: ask history.
                continue
            if isinstance(message, Preview):
                now = self.clock.monotonic()
                if now - last_preview >= PREVIEW_EVERY_S:
                    last_preview = now
                    await self.transport.preview(
                        lease,
                        node_id=message.node_id,
                        content_type=message.content_type,
                        data=message.data,
                    )
                continue
            if tracker.feed(message):
                now = self.clock.monotonic()
                if now - last_progress >= PROGRESS_EVERY_S:
                    last_progress = now
                    reply = await self.transport.progress(lease, tracker.snapshot())
                    if reply.cancel:
                        cancel.set()

    async def _next_message(self, lease: Lease, timeout_s: float) -> Message | _Wake | None:
        try:
            return await asyncio.wait_for(self._inboxes[lease.prompt_id].get(), timeout_s)
        except TimeoutError:
            return None

    async def _settled(self, lease: Lease, interrupted: bool) -> str:
        """The socket went quiet: ask /history and /queue. "done" when the prompt
        succeeded, "pending" or "running" while it is on its way; raises otherwise."""
        state = await self.comfy.prompt_state(lease.prompt_id)
        if state in ("pending", "running"):
            return state
        if state == "done":
            entry = await self.comfy.history(lease.prompt_id)
            if entry is not None and entry.status_str == "success":
                return "done"
            if interrupted or (entry is not None and entry.interrupted):
                raise Canceled
            if entry is not None and entry.error is not None:
                raise execution_error(
                    entry.error.exception_type,
                    entry.error.exception_message,
                    node_id=entry.error.node_id,
                    class_type=entry.error.node_type,
                )
            raise ExecutionFailed("the prompt ended without success")
        # The backend does not know the prompt: it restarted, or was never reached.
        if interrupted:
            raise Canceled
        if not self._socket_up.is_set():
            raise WebSocketLost
        raise BackendRestarted

    async def _stop_prompt(self, lease: Lease) -> str:
        """Interrupt a running prompt or remove a pending one; 'gone' if it will not run,
        'done' if it already finished (a cancel that arrives after success changes nothing)."""
        state = await self.comfy.prompt_state(lease.prompt_id)
        if state == "done":
            return "done"
        if state == "pending":
            await self.comfy.delete_queued([lease.prompt_id])
            return "gone"
        if state == "running":
            await self.comfy.interrupt(lease.prompt_id)
            self._interrupting.add(lease.prompt_id)
            self._no_interrupt.clear()
            return "interrupting"
        return "gone"

    async def _fail(self, lease: Lease, exc: JobError) -> None:
        if isinstance(exc, OutOfMemory):
            # The next prompt here must not meet the same full memory.
            with contextlib.suppress(ComfygateError):
                await self.comfy.free()
        failure = JobFailure(
            code=exc.code,
            message=exc.message,
            node_id=exc.node_id,
            class_type=exc.class_type,
            details=exc.details,
        )
        retryable = exc.retryable or (isinstance(exc, JobTimeout) and lease.retry_on_timeout)
        await self.transport.fail(lease, failure, retryable=retryable)
