"""The resume cursor of ``GET /v1/events``: per-job seqs plus a time watermark.

Per-job seqs, not one global counter: events of different jobs commit in any order,
so a single counter could skip an event that committed late.

A resume replays, of each job the cursor names, the events after its seq, and of any
other job the events stored at or after the cursor's ``horizon`` (watermark - SLACK).
So a job need only be named while something it sent is that recent: the cursor holds
the jobs with an event sent in the last 2 x SLACK or so, however long the stream runs.

The token is base64url (no padding) of: a version byte, the watermark in ms as a
varint, then per job its id's 16 bytes and its seq as a varint: about 23 characters a
job where the first form, base64 of JSON, took about 56. The first form is still read
(a client may hold one across an upgrade); of the jobs it does not name, too, a resume
replays only the events from the horizon on.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from comfygate import json_depth

#: events that committed up to this long before the watermark are still replayed
SLACK = timedelta(seconds=10)

VERSION = 1
#: the store's seq is a 32-bit integer: a larger one is not a seq
MAX_SEQ = 2**31 - 1
_TOKEN = re.compile(r"[A-Za-z0-9_-]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _floor_ms(at: datetime) -> datetime:
    """To the ms the token carries, rounding down: a lower watermark only replays more."""
    return _from_ms(_ms(at))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _entry(job_id: str, seq: int) -> bytes:
    return uuid.UUID(job_id).bytes + _varint(seq)


def _read_varint(raw: bytes, pos: int) -> tuple[int, int]:
    """The number at ``pos`` and the position after it; ValueError if it is cut or
    longer than a 64-bit number needs."""
    n = 0
    for i in range(10):
        if pos + i >= len(raw):
            raise ValueError("cut varint")
        byte = raw[pos + i]
        n |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return n, pos + i + 1
    raise ValueError("varint too long")


@dataclass
class StreamCursor:
    watermark: datetime
    #: the last seq sent of each job the stream follows (unfinished ones for as long as
    #: the stream runs: what it compares live events with)
    seqs: dict[str, int] = field(default_factory=dict)
    #: when each job last had an event sent, by the stream's clock, oldest first: the
    #: jobs the token names
    sent_at: dict[str, datetime] = field(default_factory=dict)
    #: jobs whose terminal event was sent: forgotten altogether once out of ``sent_at``
    ended: set[str] = field(default_factory=set)
    #: each named job's part of the token, in ``sent_at``'s order: a token is sent with
    #: every event, so it is not packed anew each time
    _entries: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.watermark = _floor_ms(self.watermark)
        self._entries = {job_id: _entry(job_id, self.seqs[job_id]) for job_id in self.sent_at}

    @property
    def horizon(self) -> datetime:
        """A resume replays, of a job the token does not name, the events stored at or
        after this."""
        return self.watermark - SLACK

    def encode(self) -> str:
        raw = bytearray([VERSION])
        raw += _varint(_ms(self.watermark))
        raw += b"".join(self._entries.values())
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, *, now: datetime | None = None) -> StreamCursor | None:
        """The cursor a token stands for, or None for anything else. ``now`` stands for
        when the named jobs' events were sent (no later than now): they are pruned from
        then on."""
        if not _TOKEN.fullmatch(token):
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            if raw[:1] == b"{":
                watermark, seqs = _decode_json(raw)
            else:
                watermark, seqs = _decode_binary(raw)
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, binascii.Error):
            return None
        sent = now or datetime.now(UTC)
        return cls(watermark=watermark, seqs=seqs, sent_at=dict.fromkeys(seqs, sent))

    def advance(
        self, job_id: str, seq: int, *, caught_up: datetime, sent: datetime, terminal: bool
    ) -> None:
        """Event ``seq`` of ``job_id`` is sent at ``sent``, every event stored before
        ``caught_up - SLACK`` having been taken from the subscription."""
        self.seqs[job_id] = max(seq, self.seqs.get(job_id, 0))
        self.watermark = max(self.watermark, _floor_ms(caught_up - SLACK))
        self.sent_at.pop(job_id, None)
        self.sent_at[job_id] = sent
        self._entries.pop(job_id, None)
        self._entries[job_id] = _entry(job_id, self.seqs[job_id])
        if terminal:
            self.ended.add(job_id)
        self._prune()

    def _prune(self) -> None:
        # Oldest first, so this stops at the first job still needed. A clock that stepped
        # back leaves a later entry in front: pruning then waits, never drops too soon.
        horizon = self.horizon
        while self.sent_at:
            job_id, at = next(iter(self.sent_at.items()))
            if at >= horizon:
                return
            del self.sent_at[job_id]
            del self._entries[job_id]
            if job_id in self.ended:
                self.ended.discard(job_id)
                self.seqs.pop(job_id, None)


def _decode_binary(raw: bytes) -> tuple[datetime, dict[str, int]]:
    if raw[:1] != bytes([VERSION]):
        raise ValueError("unknown cursor version")
    ms, pos = _read_varint(raw, 1)
    seqs: dict[str, int] = {}
    while pos < len(raw):
        if pos + 16 > len(raw):
            raise ValueError("cut job id")
        job_id = str(uuid.UUID(bytes=raw[pos : pos + 16]))
        seqs[job_id], pos = _read_varint(raw, pos + 16)
    return _checked(ms, seqs)


def _decode_json(raw: bytes) -> tuple[datetime, dict[str, int]]:
    """The first form: ``{"w": watermark_ms, "s": {job_id: seq}}``."""
    # Two levels at most: a token nested thousands deep is no cursor, not a RecursionError.
    doc = json_depth.loads(raw.decode(), max_depth=2)
    seqs = {str(uuid.UUID(k)): int(v) for k, v in doc["s"].items()}
    if set(seqs) != set(doc["s"]):
        raise ValueError("a job id not in its canonical form")
    return _checked(int(doc["w"]), seqs)


def _checked(ms: int, seqs: dict[str, int]) -> tuple[datetime, dict[str, int]]:
    if ms < 0 or any(not 0 <= seq <= MAX_SEQ for seq in seqs.values()):
        raise ValueError("out of range")
    return _from_ms(ms), seqs
