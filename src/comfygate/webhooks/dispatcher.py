"""Drains the webhook outbox: claims due deliveries, POSTs them signed, records each
attempt. Runs in every gateway; the claim keeps them from sending one row twice at once.

A delivery is at least once: a gateway that dies after the receiver answered but before
the attempt was recorded sends it again, with the same ``webhook-id`` for the receiver
to deduplicate on."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from comfygate.clock import Clock
from comfygate.errors import ComfygateError
from comfygate.jobs.model import Job
from comfygate.jobs.webhooks import Backoff, Delivery, DeliveryStatus, Outcome
from comfygate.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

#: renders the job as a stored status snapshot saw it (``Renderer.job_at``)
Render = Callable[[Job, dict[str, Any]], dict[str, Any]]


class Outbox(Protocol):
    async def claim_due(
        self, *, now: datetime, limit: int, lease_s: float, retry_for_s: float
    ) -> list[Delivery]: ...

    async def record(
        self, delivery: Delivery, outcome: Outcome, *, now: datetime, retry_at: datetime
    ) -> DeliveryStatus: ...


class JobReader(Protocol):
    async def get_job(self, job_id: str) -> Job | None: ...


@dataclass(frozen=True)
class DispatchPolicy:
    backoff: Backoff = field(default_factory=Backoff)
    #: deliveries claimed per pass (sent concurrently)
    batch: int = 20
    #: a claimed delivery is due again after this if its attempt was never recorded;
    #: longer than the request timeout, so a slow receiver is not sent it twice at once
    lease_s: float = 60.0


class Dispatcher:
    def __init__(
        self,
        *,
        outbox: Outbox,
        jobs: JobReader,
        render: Render,
        client: httpx.AsyncClient,
        secret_of: Callable[[str], str],
        clock: Clock,
        policy: DispatchPolicy = DispatchPolicy(),
        rng: random.Random | None = None,
    ) -> None:
        self.outbox = outbox
        self.jobs = jobs
        self.render = render
        self.client = client
        self.secret_of = secret_of
        self.clock = clock
        self.policy = policy
        self.rng = rng or random.Random()

    async def run_once(self) -> list[DeliveryStatus]:
        """One pass: every due delivery (up to a batch) attempted once."""
        due = await self.outbox.claim_due(
            now=self.clock.now(),
            limit=self.policy.batch,
            lease_s=self.policy.lease_s,
            retry_for_s=self.policy.backoff.retry_for_s,
        )
        return list(await asyncio.gather(*(self._attempt(d) for d in due)))

    async def _attempt(self, delivery: Delivery) -> DeliveryStatus:
        outcome = await self.send(delivery)
        now = self.clock.now()
        status = await self.outbox.record(
            delivery,
            outcome,
            now=now,
            retry_at=self.policy.backoff.next_at(delivery.attempts, now, self.rng),
        )
        log.info(
            "webhook %s %s of job %s to %s, attempt %d: %s in %d ms -> %s",
            delivery.id,
            delivery.type,
            delivery.job_id,
            delivery.url,
            delivery.attempts,
            outcome.status_code or outcome.error,
            outcome.duration_ms,
            status.value,
        )
        return status

    def payload(self, delivery: Delivery, job: Job) -> bytes:
        body = {
            "type": delivery.type,
            "timestamp": delivery.event_at.isoformat(),
            "data": self.render(job, delivery.data),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    async def send(self, delivery: Delivery) -> Outcome:
        started = self.clock.monotonic()

        def took() -> int:
            return int((self.clock.monotonic() - started) * 1000)

        job = await self.jobs.get_job(delivery.job_id)
        if job is None:
            return Outcome(None, "the job no longer exists", took())
        body = self.payload(delivery, job)
        headers = {
            "content-type": "application/json",
            "user-agent": "comfygate-webhooks",
            **signed_headers(
                self.secret_of(delivery.owner_id),
                delivery.id,
                int(self.clock.now().timestamp()),
                body,
            ),
        }
        try:
            # Streamed and never read: a receiver's answer is its status code.
            async with self.client.stream(
                "POST", delivery.url, content=body, headers=headers
            ) as response:
                code = response.status_code
                location = response.headers.get("location")
        except ComfygateError as exc:  # the SSRF guard refused the address
            return Outcome(None, exc.message, took())
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Outcome(None, error, took())
        if 300 <= code < 400:
            return Outcome(code, f"redirects are not followed (Location: {location})", took())
        if not 200 <= code < 300:
            return Outcome(code, f"the receiver answered {code}", took())
        return Outcome(code, None, took())
