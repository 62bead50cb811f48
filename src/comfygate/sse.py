"""Reading Server-Sent Events on the client side (the CLI, tests, benchmarks)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SseEvent:
    #: this event's own ``id`` field; None when it carried none (not stored, not resumable)
    id: str | None
    type: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseParser:
    """Feed it the stream's lines one by one; it returns each event as it completes."""

    _id: str | None = None
    _type: str = "message"
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> SseEvent | None:
        if line == "":
            event = SseEvent(self._id, self._type, "\n".join(self._data)) if self._data else None
            self._id, self._type, self._data = None, "message", []
            return event
        if line.startswith(":"):  # a comment: keep-alive
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            self._id = value
        elif name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        return None
