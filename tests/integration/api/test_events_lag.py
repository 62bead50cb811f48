"""The all-jobs stream's cursor, on a clock of the test's: a stream that lags and is
then cut must resume with what it had not sent yet (its cursor's watermark follows what
it took from its subscription, not the clock), and a job the cursor no longer names
resumes with only what it had not sent."""

from __future__ import annotations

import json
import types
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from starlette.requests import Request

from comfygate.api import events as events_api
from comfygate.clock import FakeClock
from comfygate.events.cursor import SLACK, StreamCursor
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


async def subscribed(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> tuple[RunningGateway, FakeClock, AsyncGenerator[Any]]:
    """A gateway with no backend (jobs stay queued) and a stream of it, subscribed."""
    monkeypatch.setattr(events_api, "KEEPALIVE_S", 0.05)
    rg = await start_gateway()
    clock = FakeClock(rg.gw.clock.now())
    body = await stream(rg, clock, None)
    await body.__anext__()  # "retry:"
    return rg, clock, body


async def test_a_lagging_stream_cut_resumes_with_the_events_it_had_not_sent(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rg, clock, body = await subscribed(start_gateway, monkeypatch)
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


async def test_a_job_the_cursor_no_longer_names_resumes_with_only_its_new_events(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rg, clock, body = await subscribed(start_gateway, monkeypatch)
    async with rg.client() as c:
        submit = "/v1/workflows/image-ops/jobs"
        a = (await c.post(submit, json={"params": {}})).json()["id"]
        [(_, _)] = await frames(body, a)
        # A minute on with nothing new: the stream is caught up (a keep-alive), then
        # sends b's first event, long after a's.
        clock.advance(timedelta(minutes=1).total_seconds())
        await frames(body, "keep-alive")
        b = (await c.post(submit, json={"params": {}})).json()["id"]
        [(cursor, _)] = await frames(body, b)
    await body.aclose()
    assert cursor is not None
    token = StreamCursor.decode(cursor, now=clock.now())
    assert token is not None and set(token.seqs) == {b}, "a, though queued, is not named"
    # While the client is away, a moves on: canceled, a minute after its last event.
    await rg.gw.store.request_cancel(a, now=clock.now())
    resumed = await stream(rg, clock, cursor)
    sent = await frames(resumed, "keep-alive")
    await resumed.aclose()
    replayed = [json.loads(data) for event_id, data in sent if event_id is not None]
    assert [(e["id"], e["status"]) for e in replayed] == [(a, "canceled")]


async def test_a_last_event_id_that_is_no_cursor_starts_afresh(
    start_gateway: GatewayFactory,
) -> None:
    rg = await start_gateway()
    clock = FakeClock(rg.gw.clock.now())
    body = await stream(rg, clock, "bm90IGEgY3Vyc29y")  # "not a cursor"
    await body.__anext__()  # "retry:"; subscribed
    async with rg.client() as c:
        a = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()["id"]
        [(cursor, _)] = await frames(body, a)
    await body.aclose()
    assert cursor is not None and StreamCursor.decode(cursor) is not None


async def test_a_stream_whose_subscription_never_empties_still_moves_its_watermark_on(
    start_gateway: GatewayFactory,
) -> None:
    """Busy: a notice always waits when the stream takes the next one. Once it took
    what waited at some moment, the watermark may move on to that moment, no further."""
    rg = await start_gateway()  # no backend: jobs stay queued
    clock = FakeClock(rg.gw.clock.now().replace(microsecond=0))
    body = await stream(rg, clock, None)
    await body.__anext__()  # "retry:"; subscribed
    submit = "/v1/workflows/image-ops/jobs"

    async def watermark_at(job_id: str) -> datetime:
        [(cursor, _)] = await frames(body, job_id)
        token = StreamCursor.decode(cursor or "")
        assert token is not None
        return token.watermark

    async with rg.client() as c:
        a = (await c.post(submit, json={"params": {}})).json()["id"]
        first = await watermark_at(a)
        b = (await c.post(submit, json={"params": {}})).json()["id"]
        d = (await c.post(submit, json={"params": {}})).json()["id"]
        clock.advance(60)
        moment = clock.now()  # b and d wait
        assert await watermark_at(b) == first
        e = (await c.post(submit, json={"params": {}})).json()["id"]
        clock.advance(60)  # d and e wait
        assert await watermark_at(d) == first
        assert await watermark_at(e) == moment - SLACK > first
    await body.aclose()
