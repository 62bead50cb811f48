"""One agent per ComfyUI backend: lease a job, run it, report through the fence.

The agent keeps one WebSocket to its backend open across jobs. It never trusts the
socket alone: when it goes quiet, the prompt's fate is read from /history and /queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from comfygate.clock import Clock
from comfygate.contracts.models import models_available
from comfygate.errors import (
    BackendRestarted,
    ComfygateError,
    ExecutionFailed,
    JobError,
    LeaseLost,
    StorageFailed,
)
from comfygate.jobs.model import Lease, Lessee
from comfygate.storage.base import Storage
from comfygate.worker.blobs import StorageBlobs, WorkerBlobs
from comfygate.worker.failure import report_failure
from comfygate.worker.follow import QUIET_S, STOPPING_QUIET_S, Canceled, Follow, Line, Signals
from comfygate.worker.hygiene import Hygiene, HygienePolicy
from comfygate.worker.interrupts import Interrupts
from comfygate.worker.mailroom import Mailroom
from comfygate.worker.outputs import EarlyFetches, collect_outputs
from comfygate.worker.ports import ComfyBackend
from comfygate.worker.prompt import attempt_graph, prepare
from comfygate.worker.transport.base import WorkerTransport
from comfygate.worker.warmup import needs_warmup, run_warmup

log = logging.getLogger(__name__)

#: an agent whose heartbeats have failed this long takes no new work: the rescuer will
#: soon hand its jobs to others, and leasing more would only run them twice
STOP_LEASING_AFTER_S = 20.0
#: how often the model files of the backend are read again from /object_info (and on
#: every reconnect): files added to a running ComfyUI appear in its lists
MODELS_EVERY_S = 300.0


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
        self._mail = Mailroom()
        #: prompt id → job id of the leases this agent holds now
        self._jobs: dict[str, str] = {}
        #: one slot at a time waits for work, so one ring wakes one claim per agent
        self._leasing = asyncio.Lock()
        #: since when heartbeats fail (monotonic), None while they succeed
        self._beats_failing_since: float | None = None
        self._interrupts = Interrupts(comfy, agent_id)
        #: how long an interrupted prompt may run on before its job is let go and the
        #: backend is marked down until the prompt ends
        self.interrupt_grace_s = interrupt_grace_s
        self.stop_leasing_after_s = STOP_LEASING_AFTER_S
        self.quiet_s = QUIET_S
        self.stopping_quiet_s = STOPPING_QUIET_S
        #: cleared by an operator's drain: running jobs finish, no new work is taken
        self._accepting = asyncio.Event()
        self._accepting.set()
        self._stopping = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._mail.up.is_set()

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
            await self._mail.up.wait()
            await self._warm.wait()
            await self._interrupts.none_under_way()
            if self._interrupts.stuck:
                await self._interrupts.recheck()
                if self._interrupts.stuck:
                    await self.clock.sleep(2.0)
                    continue
            if not self.heartbeats_failing():
                return
            await self.clock.sleep(1.0)

    def _wants_work(self) -> bool:
        return (
            self.connected
            and not self.draining
            and not self._interrupts.stuck
            and not self._interrupts.under_way
            and not self.heartbeats_failing()
        )

    @property
    def down(self) -> bool:
        """An interrupted prompt would not stop: no new work until it ends."""
        return self._interrupts.stuck

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

    async def _read_socket(self) -> None:
        delay = 0.2
        while True:
            try:
                async with self.comfy.socket() as sock:
                    if self.warmup is not None:
                        self._warm.clear()
                        self._warming = asyncio.create_task(self._warm_up(), name="warmup")
                    self._mail.up.set()
                    # A backend that was away may come back with other model files.
                    self._models_at = None
                    delay = 0.2
                    async for message in sock:
                        self._mail.post(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the socket is best effort; /history is the truth
                log.debug("socket to %s lost: %s", self.backend, exc)
            self._mail.up.clear()
            await self.clock.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def execute(self, lease: Lease, *, resume: bool = False) -> None:
        """Run a leased job; ``resume`` follows a prompt submitted before a restart."""
        self._mail.open(lease.prompt_id)
        self._jobs[lease.prompt_id] = lease.job_id
        signals = Signals(cancel=asyncio.Event(), lost=asyncio.Event())
        beats = asyncio.create_task(self._heartbeats(lease, signals))
        try:
            await self._run(lease, signals, resume=resume)
        except LeaseLost:
            log.info("lease on job %s lost; outputs discarded", lease.job_id)
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats
            self._mail.close(lease.prompt_id)
            self._jobs.pop(lease.prompt_id, None)
            if not self._jobs:
                # No lease left to renew, so no heartbeat will ever clear this: whether
                # the gateway answers again is for the next lease call to find out.
                self._beats_failing_since = None
            self._interrupts.ended(lease.prompt_id)
        await self.hygiene.after_job(idle=self._mail.idle)

    async def _heartbeats(self, lease: Lease, signals: Signals) -> None:
        while True:
            try:
                if await self.transport.wait_cancel(lease, lease.heartbeat_s):
                    signals.cancel.set()
                reply = await self.transport.heartbeat(lease)
                self._beats_failing_since = None
                if reply.cancel:
                    signals.cancel.set()
                if signals.cancel.is_set():
                    self._mail.wake(lease.prompt_id)
            except LeaseLost:
                self._beats_failing_since = None  # the gateway answers again
                signals.lost.set()
                self._mail.wake(lease.prompt_id)
                return
            except Exception:
                log.exception("heartbeat for job %s failed", lease.job_id)
                if self._beats_failing_since is None:
                    self._beats_failing_since = self.clock.monotonic()
                await self.clock.sleep(1.0)

    async def _run(self, lease: Lease, signals: Signals, *, resume: bool) -> None:
        early = EarlyFetches(self.comfy, self.blobs, lease)
        try:
            await self._run_fetching(lease, signals, early, resume=resume)
        finally:
            await early.aclose()

    async def _run_fetching(
        self,
        lease: Lease,
        signals: Signals,
        early: EarlyFetches,
        *,
        resume: bool,
    ) -> None:
        try:
            if resume:
                # Its fate is read from /history and /queue when the socket stays quiet:
                # done → collected, pending or running → followed, unknown → requeued.
                graph = await attempt_graph(self.blobs, lease)
            else:
                graph = await prepare(self.comfy, self.blobs, lease)
                await self.comfy.submit(
                    graph, prompt_id=lease.prompt_id, extra_data={"comfygate_job": lease.job_id}
                )
            follow = Follow(self._line(), lease, graph, signals, early)
            final = await follow.run()
        except Canceled:
            await self.transport.canceled(lease)
            return
        except LeaseLost:
            # Someone else owns the job now: stop our prompt, publish nothing.
            with contextlib.suppress(ComfygateError):
                await self._interrupts.stop(lease.prompt_id)
            raise
        except JobError as exc:
            await report_failure(self.comfy, self.transport, lease, exc)
            return
        except ComfygateError as exc:
            await report_failure(self.comfy, self.transport, lease, ExecutionFailed(exc.message))
            return
        entry = await follow.written_history()
        if entry is None:
            await report_failure(self.comfy, self.transport, lease, BackendRestarted())
            return
        try:
            outputs = await collect_outputs(self.comfy, self.blobs, lease, entry, early)
        except JobError as exc:
            await report_failure(self.comfy, self.transport, lease, exc)
            return
        except OSError as exc:
            # Whatever was written stays out of the manifest; the sweeper removes it.
            log.warning("storing outputs of job %s failed: %s", lease.job_id, exc)
            await report_failure(self.comfy, self.transport, lease, StorageFailed())
            return
        await self.transport.complete(lease, outputs, final)

    def _line(self) -> Line:
        """What following a prompt uses, with the timings as they are set now."""
        return Line(
            agent_id=self.agent_id,
            comfy=self.comfy,
            transport=self.transport,
            clock=self.clock,
            mail=self._mail,
            interrupts=self._interrupts,
            quiet_s=self.quiet_s,
            stopping_quiet_s=self.stopping_quiet_s,
            grace_s=self.interrupt_grace_s,
        )
