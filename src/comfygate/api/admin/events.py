"""Status changes of every job, live, for a dashboard that refreshes without polling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from fastapi.responses import StreamingResponse

from comfygate.api.admin.guard import admin_router
from comfygate.api.deps import gateway
from comfygate.api.events import SSE_HEADERS, frame
from comfygate.events.memory import SubscriberOverflow
from comfygate.events.stream import KEEPALIVE_S, next_or_quiet
from comfygate.gateway import Gateway

router = admin_router()


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def admin_events(gw: Annotated[Gateway, Depends(gateway)]) -> StreamingResponse:
    """Server-Sent Events: one ``status`` frame per job transition of any owner, with
    ``job_id``, ``owner_id``, ``seq``, ``status``, ``attempts``, ``progress``, ``error``,
    ``started_at`` and ``finished_at``. Progress ticks are left out (too many for a
    table). There is no replay: after a reconnect, reload the lists it keeps fresh."""
    sub = gw.bus.subscribe_all()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 1000\n\n"
            while True:
                live = await next_or_quiet(sub, gw.clock, KEEPALIVE_S)
                if live is None:
                    yield ": keep-alive\n\n"
                    continue
                if live.type != "status":
                    continue
                data = {**live.data, "job_id": live.job_id, "owner_id": live.owner_id}
                yield frame("status", {**data, "seq": live.seq})
        except SubscriberOverflow:
            return  # the browser reconnects on its own and reloads
        finally:
            await sub.aclose()

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)
