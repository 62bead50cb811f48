"""Joins this gateway's event bus and doorbell to the other gateways' through a broker.

Out: every event is published on the local bus at once, and its notice queued for
the broker; a ring of the doorbell likewise. One sender task drains the queue in
batches, in order, and waits out a broker that is away.

In: a ring wakes the local waiters. A stored event's notice is read back from the
store (``events_after_many``: one read for the notices of many jobs that arrived
together) and fanned out on the local bus with its stored data and seq, so SSE
streams here see the same events, in the same order, as streams on the gateway that
wrote them; a live event (progress, preview) carries its data. Notices
of owners nobody follows here are dropped before any read. Our own notices, which
the broker delivers back, are ignored: they were published locally already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

from comfygate.events.broker import Broker, backoff_delays
from comfygate.events.memory import MemoryBus
from comfygate.events.notice import EventNotice, RingNotice, decode, encode_event, encode_ring
from comfygate.jobs.doorbell import Doorbell
from comfygate.jobs.model import JobEvent, LiveEvent

log = logging.getLogger(__name__)

#: notices waiting for the broker, or for their store read, at most; past it new ones
#: are dropped (a lost notice costs latency: waiters poll, streams catch up)
QUEUE_MAX = 10_000
#: notices sent in one round trip at most
SEND_BATCH = 200
#: jobs whose fanned-out seq is remembered, so a burst of notices costs one read
REMEMBERED_JOBS = 10_000
#: notices fanned out after one read of the store at most
FAN_BATCH = 100


class EventLog(Protocol):
    async def events_after_many(self, after: Mapping[str, int]) -> dict[str, list[JobEvent]]: ...


class Relay:
    """An EventSink for the domain (``publish``) whose ``doorbell`` rings everywhere."""

    def __init__(
        self, broker: Broker, *, bus: MemoryBus, log: EventLog, origin: str | None = None
    ) -> None:
        self.broker = broker
        self.bus = bus
        self.log = log
        #: this gateway process, to tell its own notices from the others'
        self.origin = origin or uuid.uuid4().hex[:12]
        self.doorbell = Doorbell(echo=self._ring_out)
        self._outbox: asyncio.Queue[str] = asyncio.Queue(QUEUE_MAX)
        self._inbox: asyncio.Queue[EventNotice] = asyncio.Queue(QUEUE_MAX)
        #: job id → the last seq fanned out here
        self._fanned: OrderedDict[str, int] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        #: notices dropped for a full queue (a gauge for the curious)
        self.dropped = 0

    async def publish(self, event: LiveEvent) -> None:
        await self.bus.publish(event)
        payload = encode_event(self.origin, event, max_bytes=self.broker.max_bytes)
        if payload is None:
            log.debug("%s event of job %s too large to relay", event.type, event.job_id)
            return
        self._post(self._outbox, payload)

    def _ring_out(self, bell: str) -> None:
        self._post(self._outbox, encode_ring(self.origin, bell))

    def _post(self, queue: asyncio.Queue[Any], item: object) -> None:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("relay queue full: %d notice(s) dropped so far", self.dropped)

    async def start(self) -> None:
        self._spawn(self._send(), "relay-send")
        self._spawn(self._fan_out(), "relay-fan-out")
        await self.broker.start(self._received, self.doorbell.ring_all_here)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.broker.close()

    def _received(self, payload: str) -> None:
        try:
            notice = decode(payload)
        except ValueError as exc:
            log.warning("ignored a broker message that is no notice: %s", exc)
            return
        if notice.origin == self.origin:
            return
        if isinstance(notice, RingNotice):
            self.doorbell.ring_here(notice.bell)
        elif self.bus.listening(notice.owner_id):
            self._post(self._inbox, notice)

    async def _send(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < SEND_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            delays = backoff_delays(cap_s=5.0)
            while True:
                try:
                    await self.broker.send(batch)
                    break
                except Exception as exc:  # the broker is away; keep the batch, in order
                    log.warning("broker unavailable (%s); %d notice(s) wait", exc, len(batch))
                    await asyncio.sleep(next(delays))

    async def _fan_out(self) -> None:
        # The notices waiting are taken together, so a busy gateway reads the stored
        # events of many jobs at once.
        while True:
            batch = [await self._inbox.get()]
            while len(batch) < FAN_BATCH and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            try:
                await self._fan_out_batch(batch)
            except Exception:
                log.exception("could not fan out %d notice(s)", len(batch))

    async def _fan_out_batch(self, batch: list[EventNotice]) -> None:
        # Everything from each job's first new seq on: later notices then cost no read.
        after: dict[str, int] = {}
        for n in batch:
            if n.seq is not None and n.seq > self._fanned.get(n.job_id, 0):
                after[n.job_id] = min(after.get(n.job_id, n.seq), n.seq)
        read = await self.log.events_after_many({j: seq - 1 for j, seq in after.items()})
        # In arrival order, each job's stored events at its first notice: a progress
        # tick never overtakes the status event noticed before it.
        for n in batch:
            if n.seq is None:
                assert n.data is not None
                await self.bus.publish(
                    LiveEvent(job_id=n.job_id, owner_id=n.owner_id, type=n.type, data=n.data)
                )
                continue
            events = read.pop(n.job_id, [])
            for ev in events:
                await self.bus.publish(
                    LiveEvent(
                        job_id=n.job_id, owner_id=n.owner_id, type=ev.type, data=ev.data, seq=ev.seq
                    )
                )
            if events:
                self._fanned[n.job_id] = events[-1].seq
                self._fanned.move_to_end(n.job_id)
                if len(self._fanned) > REMEMBERED_JOBS:
                    self._fanned.popitem(last=False)
