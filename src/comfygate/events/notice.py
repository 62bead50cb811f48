"""What one gateway tells the others through the broker, as one small JSON text.

A notice names things, it does not carry them: a stored event goes as its ids
(job, owner, seq, type) and the receiver reads it from the store, so the payload
stays far below PostgreSQL's 8,000-byte NOTIFY limit whatever the event holds.
Live-only events (progress, preview) have no stored copy, so they carry their data.
Both are small: a preview event is a signed URL of the image the agent put in storage,
never the image, so previews cross on NOTIFY as on Redis (with local storage the URL
works on every gateway that shares the data directory and secret key). One that would
not fit is not sent: it is superseded by the next tick anyway.
A ring names its doorbell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from comfygate.jobs.model import LiveEvent


@dataclass(frozen=True)
class EventNotice:
    """A job event published on gateway ``origin``; ``data`` is None for a stored
    event (``seq`` set): read it from the store."""

    origin: str
    job_id: str
    owner_id: str
    type: str
    seq: int | None = None
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class RingNotice:
    origin: str
    bell: str


Notice = EventNotice | RingNotice


def encode_event(origin: str, event: LiveEvent, *, max_bytes: int) -> str | None:
    """The notice of ``event``, or None when a live event's data would not fit."""
    body: dict[str, Any] = {"o": origin, "j": event.job_id, "w": event.owner_id, "t": event.type}
    if event.seq is not None:
        body["s"] = event.seq
    else:
        body["d"] = event.data
    text = _dumps(body)
    # A stored event's notice is a few ids: it always fits.
    if event.seq is None and len(text.encode()) > max_bytes:
        return None
    return text


def encode_ring(origin: str, bell: str) -> str:
    return _dumps({"o": origin, "b": bell})


def decode(text: str | bytes) -> Notice:
    """Raises ValueError for anything that is not a notice (another program may
    publish on the same channel)."""
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("o"), str):
        raise ValueError("not a notice: no origin")
    if "b" in body:
        return RingNotice(origin=body["o"], bell=_text(body, "b"))
    seq, data = body.get("s"), body.get("d")
    if seq is None and not isinstance(data, dict):
        raise ValueError("an event notice needs a seq or its data")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1):
        raise ValueError(f"bad seq {seq!r}")
    return EventNotice(
        origin=body["o"],
        job_id=_text(body, "j"),
        owner_id=_text(body, "w"),
        type=_text(body, "t"),
        seq=seq,
        data=data if seq is None else None,
    )


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"notice field {key!r} must be a non-empty string")
    return value


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))
