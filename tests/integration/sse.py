"""A small SSE reader for tests: frames as (id, type, data) until a condition holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from comfygate.sse import SseParser


@dataclass(frozen=True)
class Frame:
    id: str | None
    type: str
    data: dict[str, Any]


async def read_frames(
    client: httpx.AsyncClient,
    url: str,
    *,
    last_event_id: str | None = None,
    until: Callable[[list[Frame]], bool],
) -> list[Frame]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    frames: list[Frame] = []
    async with client.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        parser = SseParser()
        async for line in response.aiter_lines():
            event = parser.feed(line)
            if event is not None:
                frames.append(Frame(event.id, event.type, event.json()))
                if until(frames):
                    return frames
    return frames


def terminal(frames: list[Frame]) -> bool:
    return any(
        f.type == "status" and f.data["status"] in ("succeeded", "failed", "canceled", "expired")
        for f in frames
    )
