"""The resume cursor of ``GET /v1/events``: per-job seqs plus a time watermark.

Per-job seqs, not one global counter: events of different jobs commit in any order,
so a single counter could skip an event that committed late.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

#: events that committed up to this long before the watermark are still replayed
SLACK = timedelta(seconds=10)


@dataclass
class StreamCursor:
    watermark: datetime
    seqs: dict[str, int] = field(default_factory=dict)
    #: jobs whose terminal event was sent, with when; dropped once past the watermark
    finished: dict[str, datetime] = field(default_factory=dict)

    def encode(self) -> str:
        raw = {"w": int(self.watermark.timestamp() * 1000), "s": self.seqs}
        return (
            base64.urlsafe_b64encode(json.dumps(raw, separators=(",", ":")).encode())
            .decode()
            .rstrip("=")
        )

    @classmethod
    def decode(cls, token: str) -> StreamCursor | None:
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            seqs = {str(k): int(v) for k, v in raw["s"].items()}
            watermark = datetime.fromtimestamp(int(raw["w"]) / 1000, UTC)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return cls(watermark=watermark, seqs=seqs)

    def advance(self, job_id: str, seq: int, now: datetime, *, terminal: bool) -> None:
        self.seqs[job_id] = max(seq, self.seqs.get(job_id, 0))
        self.watermark = max(self.watermark, now - SLACK)
        if terminal:
            self.finished[job_id] = now
        for done, at in list(self.finished.items()):
            if at < self.watermark - SLACK:
                self.seqs.pop(done, None)
                del self.finished[done]
