from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from comfygate.events.cursor import SLACK, StreamCursor
from comfygate.ids import new_id

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sent(cur: StreamCursor, job_id: str, seq: int, at: datetime, *, terminal: bool = False) -> None:
    """An event sent at ``at`` by a stream that keeps up (caught up until then)."""
    cur.advance(job_id, seq, caught_up=at, sent=at, terminal=terminal)


def named(cur: StreamCursor) -> dict[str, int]:
    """The jobs its token names, with their seqs."""
    back = StreamCursor.decode(cur.encode(), now=T0)
    assert back is not None
    return back.seqs


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_round_trip() -> None:
    a, b = new_id(), new_id()
    cur = StreamCursor(watermark=T0 + timedelta(microseconds=1500))
    sent(cur, a, 3, T0)
    sent(cur, b, 300, T0)
    back = StreamCursor.decode(cur.encode(), now=T0)
    assert back is not None and back.seqs == {a: 3, b: 300}
    # the token carries ms: the watermark is kept at ms, rounded down (replays more)
    assert back.watermark == cur.watermark == T0 + timedelta(milliseconds=1)
    assert back.sent_at == {a: T0, b: T0}
    assert back.encode() == cur.encode()


def test_the_token_is_base64url_without_padding() -> None:
    cur = StreamCursor(watermark=T0)
    for n in range(5):
        sent(cur, new_id(), n + 1, T0)
    token = cur.encode()
    assert "=" not in token and "+" not in token and "/" not in token


@pytest.mark.parametrize(
    "token",
    [
        "!!!",
        "e30",  # "{}"
        "",
        "A",  # not base64 at all: one character left over
        b64(b"\x02" + bytes(20)),  # an unknown version
        b64(b"\x01"),  # no watermark
        b64(b"\x01\xff\xff"),  # a watermark cut short
        b64(b"\x01\x05" + bytes(10)),  # a job id cut short
        b64(b"\x01\x05" + bytes(16)),  # a seq missing
        b64(b"\x01\x05" + bytes(16) + b"\xff" * 11),  # a varint past 64 bits
        b64(b"\x01\x05" + bytes(16) + b"\xff\xff\xff\xff\x7f"),  # a seq past 32 bits
        b64(b"\x01" + b"\xff" * 9 + b"\x01"),  # a watermark past year 9999
        b64(json.dumps({"w": 1, "s": {"not-a-uuid": 1}}).encode()),
        b64(json.dumps({"w": 1, "s": {new_id(): -1}}).encode()),
        b64(json.dumps({"w": -1, "s": {}}).encode()),
        b64(json.dumps({"w": 1, "s": [1]}).encode()),
        b64(json.dumps({"w": 1, "s": {new_id().upper(): 1}}).encode()),
        "a" * 5 + "\n" + "a" * 6,
        b64(b'{"w": 1, "s": ' + b"[" * 5000 + b"]" * 5000 + b"}"),  # past json.loads' recursion
    ],
)
def test_garbage_decodes_to_none(token: str) -> None:
    assert StreamCursor.decode(token, now=T0) is None


def test_the_first_json_form_is_still_read() -> None:
    a = new_id()
    token = b64(json.dumps({"w": 1767225600000, "s": {a: 7}}, separators=(",", ":")).encode())
    back = StreamCursor.decode(token, now=T0)
    assert back is not None and back.seqs == {a: 7} and back.watermark == T0


def test_a_job_leaves_the_token_once_its_last_event_is_before_the_horizon() -> None:
    """Finished or not: a resume replays such a job's events from the horizon on,
    which are all events it has not sent."""
    queued, running, done = new_id(), new_id(), new_id()
    cur = StreamCursor(watermark=T0)
    sent(cur, queued, 1, T0)
    sent(cur, running, 2, T0)
    sent(cur, done, 4, T0, terminal=True)
    assert named(cur) == {queued: 1, running: 2, done: 4}
    # Still named while the horizon (watermark - SLACK, the watermark caught_up - SLACK)
    # has not passed their last event.
    edge = T0 + 2 * SLACK
    sent(cur, running, 3, edge)
    assert cur.horizon == T0
    assert named(cur) == {queued: 1, running: 3, done: 4}
    sent(cur, running, 4, edge + timedelta(milliseconds=1))
    assert cur.horizon > T0
    assert named(cur) == {running: 4}
    # The stream still knows where an unfinished job is, to see a gap in its seqs.
    assert cur.seqs == {queued: 1, running: 4}


def test_a_decoded_cursor_keeps_its_jobs_until_2_slack_after_the_resume() -> None:
    a, b = new_id(), new_id()
    old = StreamCursor(watermark=T0)
    sent(old, a, 2, T0)
    resumed_at = T0 + timedelta(minutes=5)
    cur = StreamCursor.decode(old.encode(), now=resumed_at)
    assert cur is not None
    sent(cur, b, 1, resumed_at)
    assert named(cur) == {a: 2, b: 1}
    later = resumed_at + 2 * SLACK + timedelta(milliseconds=1)
    sent(cur, b, 2, later)
    assert named(cur) == {b: 2}


def test_the_token_stays_small_however_many_jobs_were_sent_long_ago() -> None:
    cur = StreamCursor(watermark=T0)
    for n in range(1000):
        sent(cur, new_id(), n % 7 + 1, T0 + timedelta(milliseconds=n))
    recent = T0 + timedelta(minutes=1)
    sent(cur, new_id(), 1, recent)
    assert len(cur.encode()) < 40
    assert len(cur.sent_at) == 1


def test_seq_never_moves_back() -> None:
    a = new_id()
    cur = StreamCursor(watermark=T0)
    sent(cur, a, 5, T0)
    sent(cur, a, 3, T0)
    assert cur.seqs[a] == 5


def test_the_watermark_never_passes_caught_up_minus_slack() -> None:
    """A stream that lags: the events it sends now were taken from a subscription
    it last emptied long ago; the watermark follows that, not the clock."""
    cur = StreamCursor(watermark=T0)
    late = T0 + timedelta(minutes=1)
    cur.advance(new_id(), 1, caught_up=T0 + SLACK, sent=late, terminal=False)
    assert cur.watermark == T0
    cur.advance(new_id(), 1, caught_up=late, sent=late, terminal=False)
    assert cur.watermark == late - SLACK
