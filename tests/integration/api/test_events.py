"""Server-Sent Events: live progress, terminal close, and resume with Last-Event-ID."""

from __future__ import annotations

import asyncio
import base64

import pytest

from comfygate.api import events as events_api
from comfygate.principal import LOCAL
from tests.integration.conftest import GatewayFactory, RunningGateway, wait_status
from tests.integration.sse import Frame, read_frames, terminal
from tests.wait import until


def stored(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.id is not None]


async def streams_open(gateway: RunningGateway, n: int) -> None:
    """Until ``n`` streams of the local owner have subscribed, so no event they must see
    is published before. Counted per owner: ``bus.listening`` holds from the start, as
    the gateway's webhook wakeup listens to every owner."""
    await until(
        lambda: gateway.gw.bus.subscribers(LOCAL.id) == n,
        f"{n} event stream(s) of the local owner to subscribe",
    )


async def test_job_stream_shows_progress_and_ends_with_the_terminal_status(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as c:
        job = (
            await c.post(
                "/v1/workflows/txt2img/jobs", json={"params": {"prompt": "p", "steps": 40}}
            )
        ).json()
        frames = await read_frames(c, job["urls"]["events"], until=terminal)
    kinds = [f.type for f in frames]
    assert kinds[-1] == "status" and frames[-1].data["status"] == "succeeded"
    assert "output" in kinds and "progress" in kinds
    values = [f.data["value"] for f in frames if f.type == "progress"]
    assert values == sorted(values) and len(set(values)) > 2
    assert [int(f.id or 0) for f in stored(frames)] == list(range(1, len(stored(frames)) + 1))
    assert frames[-1].data["outputs"][0]["url"].startswith("/files/")


async def test_job_stream_resumes_after_a_dropped_connection(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        job = (
            await c.post(
                "/v1/workflows/txt2img/jobs", json={"params": {"prompt": "p", "steps": 25}}
            )
        ).json()
        first = await read_frames(
            c,
            job["urls"]["events"],
            until=lambda fs: any(f.type == "status" and f.data["status"] == "running" for f in fs),
        )
        last_id = stored(first)[-1].id
        await wait_status(c, job["id"], "succeeded")
        rest = await read_frames(c, job["urls"]["events"], last_event_id=last_id, until=terminal)
    ids = [int(f.id or 0) for f in stored(first) + stored(rest)]
    assert ids == list(range(1, len(ids) + 1)), "no event lost, none twice"
    assert rest[-1].data["status"] == "succeeded"


async def test_all_jobs_stream_names_each_job_and_resumes_with_its_cursor(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as c:
        reader = asyncio.create_task(
            read_frames(
                c,
                "/v1/events",
                until=lambda fs: (
                    sum(1 for f in fs if f.type == "status" and f.data["status"] == "running") >= 1
                ),
            )
        )
        await streams_open(gateway, 1)
        a = (
            await c.post(
                "/v1/workflows/txt2img/jobs", json={"params": {"prompt": "a", "steps": 15}}
            )
        ).json()
        b = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        first = await asyncio.wait_for(reader, 20)
        cursor = stored(first)[-1].id
        await wait_status(c, a["id"], "succeeded")
        await wait_status(c, b["id"], "succeeded")

        def both_done(fs: list[Frame]) -> bool:
            done = {
                f.data["id"] for f in fs if f.type == "status" and f.data["status"] == "succeeded"
            }
            return {a["id"], b["id"]} <= done

        rest = await asyncio.wait_for(
            read_frames(c, "/v1/events", last_event_id=cursor, until=both_done), 20
        )
    per_job: dict[str, list[str]] = {}
    for f in stored(first) + stored(rest):
        per_job.setdefault(f.data.get("job_id") or f.data["id"], []).append(f.type)
    for job_id in (a["id"], b["id"]):
        kinds = per_job[job_id]
        # every stored event once across the two connections: queued, running, output, succeeded
        assert kinds == ["status", "status", "output", "status"], kinds


async def test_quiet_streams_look_in_the_store_for_events_whose_notice_was_lost(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notice from another gateway may be lost: a stream that heard nothing for a
    keep-alive period reads the store, so it still ends."""
    monkeypatch.setattr(events_api, "KEEPALIVE_S", 0.2)
    gateway = await start_gateway()  # no backend: the job stays queued
    async with gateway.client() as c:
        everything = asyncio.create_task(read_frames(c, "/v1/events", until=terminal))
        await streams_open(gateway, 1)
        job = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        one = asyncio.create_task(read_frames(c, job["urls"]["events"], until=terminal))
        await streams_open(gateway, 2)
        # As if another gateway canceled it and its notice never came.
        await gateway.gw.store.request_cancel(job["id"], now=gateway.gw.clock.now())
        for frames in await asyncio.wait_for(asyncio.gather(one, everything), 20):
            assert [f.data["status"] for f in stored(frames)] == ["queued", "canceled"]


@pytest.mark.parametrize(
    "last_id",
    ["9223372036854775808", "9" * 5000, "1\u00b2", "2147483648", "-1", "abc"],
    ids=["past-int64", "5000-digits", "superscript-two", "past-seq", "negative", "word"],
)
@pytest.mark.parametrize("where", ["header", "query"])
async def test_a_last_event_id_that_is_no_seq_is_a_422_naming_it(
    gateway: RunningGateway, last_id: str, where: str
) -> None:
    async with gateway.client() as c:
        job = (await c.post("/v1/workflows/txt2img/jobs", json={"params": {}})).json()
        # As a browser may send it: HTTP header bytes are Latin-1 to the server.
        sent = (
            {"headers": {"Last-Event-ID": last_id.encode("latin-1")}}
            if where == "header"
            else {"params": {"last_event_id": last_id}}
        )
        # Streamed: before the fix some of these open a stream that stays open.
        async with c.stream("GET", job["urls"]["events"], **sent) as r:
            assert r.status_code == 422
            await r.aread()
    [detail] = r.json()["error"]["details"]
    assert detail["path"] == ("/Last-Event-ID" if where == "header" else "/last_event_id")
    assert last_id not in r.text
    assert "must be the id of an event this stream sent" in r.json()["error"]["message"]


async def test_a_cursor_nested_thousands_deep_is_no_cursor_and_starts_afresh(
    gateway: RunningGateway,
) -> None:
    raw = b'{"w": 1, "s": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    async with (
        gateway.client() as c,
        c.stream("GET", "/v1/events", headers={"Last-Event-ID": token}) as r,
    ):
        assert r.status_code == 200
        assert await anext(r.aiter_lines()) == "retry: 1000"
