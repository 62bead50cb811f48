from __future__ import annotations

import json

import pytest

from comfygate.events.notice import EventNotice, RingNotice, decode, encode_event, encode_ring
from comfygate.jobs.model import LiveEvent

NOTIFY_MAX = 7999


def test_a_stored_event_goes_as_ids_only_whatever_its_data() -> None:
    big = {"outputs": ["x" * 100] * 200}  # far past what NOTIFY carries
    event = LiveEvent(job_id="j1", owner_id="alice", type="status", data=big, seq=7)
    text = encode_event("gw-a", event, max_bytes=NOTIFY_MAX)
    assert text is not None and len(text.encode()) < 100
    assert "outputs" not in text
    assert decode(text) == EventNotice(
        origin="gw-a", job_id="j1", owner_id="alice", type="status", seq=7, data=None
    )


def test_a_live_event_carries_its_data() -> None:
    data = {"value": 3, "max": 20, "node_id": "3"}
    event = LiveEvent(job_id="j1", owner_id="alice", type="progress", data=data)
    text = encode_event("gw-a", event, max_bytes=NOTIFY_MAX)
    assert text is not None
    assert decode(text) == EventNotice(
        origin="gw-a", job_id="j1", owner_id="alice", type="progress", seq=None, data=data
    )


def test_a_live_event_too_large_for_the_broker_is_not_sent() -> None:
    event = LiveEvent(job_id="j1", owner_id="alice", type="preview", data={"url": "u" * 8000})
    assert encode_event("gw-a", event, max_bytes=NOTIFY_MAX) is None
    assert encode_event("gw-a", event, max_bytes=1 << 20) is not None


def test_a_ring_names_its_bell() -> None:
    assert decode(encode_ring("gw-b", "cancel:j1")) == RingNotice(origin="gw-b", bell="cancel:j1")


def test_unicode_survives_and_bytes_decode() -> None:
    event = LiveEvent(job_id="j1", owner_id="ålice", type="progress", data={"text": "日本"})
    text = encode_event("gw", event, max_bytes=NOTIFY_MAX)
    assert text is not None
    notice = decode(text.encode())
    assert isinstance(notice, EventNotice) and notice.owner_id == "ålice"
    assert notice.data == {"text": "日本"}


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[1, 2]",
        json.dumps({"j": "j1", "w": "a", "t": "status", "s": 1}),  # no origin
        json.dumps({"o": "gw", "j": "j1", "w": "a", "t": "status"}),  # neither seq nor data
        json.dumps({"o": "gw", "j": "j1", "w": "a", "t": "status", "s": 0}),
        json.dumps({"o": "gw", "j": "j1", "w": "a", "t": "status", "s": True}),
        json.dumps({"o": "gw", "j": "", "w": "a", "t": "status", "s": 1}),
        json.dumps({"o": "gw", "j": "j1", "w": "a", "t": "progress", "d": [1]}),
        json.dumps({"o": "gw", "b": 3}),
    ],
)
def test_anything_else_on_the_channel_is_refused(payload: str) -> None:
    with pytest.raises(ValueError):
        decode(payload)
