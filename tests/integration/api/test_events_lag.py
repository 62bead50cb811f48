"""A stream that lags and is then cut must resume with what it had not sent yet: its
cursor's watermark follows what it took from its subscription, not the clock."""

from __future__ import annotations

import types
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.requests import Request

from comfygate.api import events as events_api
from comfygate.clock import FakeClock
from comfygate.principal import LOCAL
from comfygate.sse import SseParser
from tests.integration.conftest import GatewayFactory, RunningGateway


async def frames(body: AsyncIterator[Any], until: str) -> list[tuple[str | None, str]]:
    """(id, data) of each frame, up to a chunk holding ``until``."""
    seen = []
    async for chunk in body:
        text = chunk if isinstance(chunk, str) else bytes(chunk).decode()
        parser = SseParser()
        for line in text.splitlines():
            event = parser.feed(line)
            if event is not None:
                seen.append((event.id, event.data))
        if until in text:
            return seen
    raise AssertionError(f"the stream ended before {until!r}")


async def stream(rg: RunningGateway, clock: FakeClock, last_id: str | None) -> AsyncGenerator[Any]:
    request = Request(
        {"type": "http", "app": rg.server.config.app, "query_string": b"", "headers": []}
    )
    gw: Any = types.SimpleNamespace(bus=rg.gw.bus, store=rg.gw.store, clock=clock)
    response = await events_api.all_events(request, gw, LOCAL, last_id)
    body = response.body_iterator
    assert isinstance(body, AsyncGenerator)  # the handler's own generator
    return body


async def test_a_lagging_stream_cut_resumes_with_the_events_it_had_not_sent(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_api, "KEEPALIVE_S", 0.05)
    rg = await start_gateway()  # no backend: jobs stay queued
    clock = FakeClock(rg.gw.clock.now())
    body = await stream(rg, clock, None)
    await body.__anext__()  # "retry:"; subscribed
    async with rg.client() as c:
        submit = "/v1/workflows/image-ops/jobs"
        a = (await c.post(submit, json={"params": {}})).json()["id"]
        [(_, _)] = await frames(body, a)
        b = (await c.post(submit, json={"params": {}})).json()["id"]
        late = (await c.post(submit, json={"params": {}})).json()["id"]
    # The stream falls a minute behind: b's and late's notices wait in its subscription.
    clock.advance(timedelta(minutes=1).total_seconds())
    [(cursor, _)] = await frames(body, b)
    await body.aclose()  # cut before it sent late's
    assert cursor is not None
    resumed = await stream(rg, clock, cursor)
    sent = await frames(resumed, "keep-alive")
    await resumed.aclose()
    assert any(late in data for _, data in sent)
