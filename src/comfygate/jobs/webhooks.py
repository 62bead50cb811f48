"""Webhooks in the domain: what a submit may ask for, which transition tells what, the
deliveries with their attempts, and when a failed delivery is tried again."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from comfygate.errors import InvalidParams
from comfygate.jobs.model import Job, JobStatus

STARTED = "job.started"
#: the event each terminal status sends
TERMINAL_EVENTS = {
    JobStatus.SUCCEEDED: "job.succeeded",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELED: "job.canceled",
    JobStatus.EXPIRED: "job.expired",
}
EVENT_TYPES = (STARTED, *TERMINAL_EVENTS.values())
MAX_URL_LENGTH = 2048

#: the ``webhook`` member of a submit body, as OpenAPI documents it
WEBHOOK_SCHEMA: dict[str, Any] = {
    # null is the same as leaving it out: no webhook
    "type": ["object", "null"],
    "description": (
        "Where to POST this job's events (Standard Webhooks, signed with the secret of "
        "GET /v1/webhooks/secret). The terminal events are sent unless `events` lists "
        "others; job.started only when listed."
    ),
    "properties": {
        "url": {"type": "string", "format": "uri", "maxLength": MAX_URL_LENGTH},
        "events": {
            "type": "array",
            "items": {"type": "string", "enum": list(EVENT_TYPES)},
            "uniqueItems": True,
            "default": list(TERMINAL_EVENTS.values()),
        },
    },
    "required": ["url"],
    "additionalProperties": False,
}


def _invalid(path: str, message: str, keyword: str) -> InvalidParams:
    return InvalidParams(
        f"webhook: {message}", details=[{"path": path, "message": message, "keyword": keyword}]
    )


@dataclass(frozen=True)
class WebhookTarget:
    """A job's webhook: the URL and the event types it wants."""

    url: str
    events: tuple[str, ...] = tuple(TERMINAL_EVENTS.values())

    @classmethod
    def parse(cls, raw: Any) -> WebhookTarget:
        """From a submit body; errors name the field (``/webhook/url``)."""
        if not isinstance(raw, dict):
            raise _invalid("/webhook", "must be an object with a url", "type")
        unknown = sorted(set(raw) - {"url", "events"})
        if unknown:
            raise _invalid(f"/webhook/{unknown[0]}", "unknown field", "additionalProperties")
        url = raw.get("url")
        if not isinstance(url, str) or not url:
            raise _invalid("/webhook/url", "url is required and must be a string", "required")
        if len(url) > MAX_URL_LENGTH:
            raise _invalid("/webhook/url", f"longer than {MAX_URL_LENGTH} characters", "maxLength")
        events = raw.get("events", list(TERMINAL_EVENTS.values()))
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise _invalid("/webhook/events", "must be a list of event types", "type")
        for i, event in enumerate(events):
            if event not in EVENT_TYPES:
                raise _invalid(f"/webhook/events/{i}", f"one of {list(EVENT_TYPES)}", "enum")
        if len(set(events)) != len(events):
            raise _invalid("/webhook/events", "lists an event twice", "uniqueItems")
        return cls(url=url, events=tuple(events))

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "events": list(self.events)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> WebhookTarget | None:
        if not data:
            return None
        return cls(url=data["url"], events=tuple(data["events"]))


def event_for(job: Job, *, started: bool = False) -> str | None:
    """The event this transition of the job sends to its webhook, if any: started is
    its first lease, else a terminal status."""
    target = WebhookTarget.from_dict(job.webhook)
    if target is None:
        return None
    event = STARTED if started else TERMINAL_EVENTS.get(job.status)
    return event if event in target.events else None


class DeliveryStatus(StrEnum):
    PENDING = "pending"  #: waiting for its next attempt
    DELIVERED = "delivered"  #: the receiver answered 2xx
    FAILED = "failed"  #: given up: a day of failed attempts
    DISABLED = "disabled"  #: the endpoint answered 410, or was disabled by an earlier 410


@dataclass(frozen=True, kw_only=True)
class DeliveryAttempt:
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One event for one job: its ``id`` is the ``webhook-id`` every attempt repeats."""

    id: str
    job_id: str
    owner_id: str
    url: str
    type: str
    #: the job's status snapshot at the event (``status_data``): rendered when sent
    data: dict[str, Any]
    event_at: datetime
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    give_up_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    log: tuple[DeliveryAttempt, ...] = field(default=())


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


@dataclass(frozen=True)
class Backoff:
    """Exponential with full jitter in its upper half: ``base * 2**(n-1)``, capped,
    times a factor in [0.5, 1); past ``retry_for_s`` after the event, give up."""

    base_s: float = 5.0
    max_s: float = 3600.0
    retry_for_s: float = 24 * 3600.0

    def next_at(self, attempts: int, now: datetime, rng: random.Random) -> datetime:
        delay = min(self.max_s, self.base_s * 2 ** max(0, attempts - 1))
        return now + timedelta(seconds=delay * rng.uniform(0.5, 1.0))
