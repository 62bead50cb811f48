"""Two gateway processes on one PostgreSQL database: A has no backend, B has an
in-process agent on a simulator (``comfygate sim``). A job submitted on A runs via B,
and a stream on A follows it, with either broker: the database's own LISTEN/NOTIFY
(the default on PostgreSQL) or Redis.

Every gateway polls the queue only once an hour (``poll_s``), so B's idle agent can
start the job within the test's timeout only if A's ring reached it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from comfygate.serve import spawn_gateway, start_simulator, stop_process
from comfygate.sse import SseParser
from tests.integration.conftest import WORKFLOWS
from tests.integration.events.conftest import REDIS_URL, require_redis
from tests.integration.sse import Frame, read_frames, terminal
from tests.integration.store.conftest import throwaway_pg_database

pytestmark = pytest.mark.postgres

ADMIN_TOKEN = "admin-token-of-the-test"
#: far longer than any wait below: only a ring across processes starts a job in time
POLL_S = "3600"
WAIT_S = 60.0


@pytest.fixture(params=["notify", "redis"])
def broker_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "notify":
        return {}
    require_redis()
    return {"COMFYGATE_BROKER_URL": REDIS_URL}


@pytest.fixture
def gateways(tmp_path: Path, broker_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(A, B): B runs the jobs, A only takes them; one database, one data directory."""
    for db_url in throwaway_pg_database():
        env = {
            "COMFYGATE_DATABASE_URL": db_url,
            "COMFYGATE_POLL_S": POLL_S,
            "COMFYGATE_ADMIN_TOKEN": ADMIN_TOKEN,
            **broker_env,
        }
        data = tmp_path / "data"
        sim, sim_url = start_simulator(tmp_path / "sim", step_ms=100)
        procs = [sim]
        try:
            b, b_url = spawn_gateway(data, WORKFLOWS, [sim_url], env=env)
            procs.append(b)
            a, a_url = spawn_gateway(data, WORKFLOWS, [], env=env)
            procs.append(a)
            yield a_url, b_url
        finally:
            for proc in reversed(procs):
                stop_process(proc)


def stored(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.id is not None]


def ids(frames: list[Frame]) -> list[tuple[str | None, str, object]]:
    """What a frame is, without what each rendering signs anew (URLs, expiries)."""
    return [(f.id, f.type, f.data.get("status")) for f in stored(frames)]


async def statuses_of(dashboard: httpx.Response, job_id: str) -> list[str]:
    """The statuses of ``job_id`` on the admin stream, up to its last."""
    parser, seen = SseParser(), []
    async for line in dashboard.aiter_lines():
        event = parser.feed(line)
        if event is not None and event.json()["job_id"] == job_id:
            seen.append(event.json()["status"])
            if terminal([Frame(event.id, event.type, event.json())]):
                return seen
    return seen


def reached(status: str) -> Callable[[list[Frame]], bool]:
    return lambda frames: any(f.type == "status" and f.data["status"] == status for f in frames)


async def test_a_stream_on_one_gateway_follows_a_job_run_through_another(
    gateways: tuple[str, str],
) -> None:
    a_url, b_url = gateways
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        httpx.AsyncClient(base_url=a_url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b_url, timeout=30) as on_b,
        asyncio.timeout(WAIT_S),
        # The ops dashboard on A; subscribed once it answers.
        on_a.stream("GET", "/v1/admin/events", headers=admin) as dashboard,
    ):
        assert dashboard.status_code == 200
        r = await on_a.post(
            "/v1/workflows/txt2img/jobs",
            json={"params": {"prompt": "a lighthouse", "steps": 10, "seed": 7}},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        events_url = f"/v1/jobs/{job_id}/events"
        follower = asyncio.create_task(read_frames(on_a, events_url, until=terminal))
        # A second visitor reads on B until the job runs, then goes on on A.
        first_part = await read_frames(on_b, events_url, until=reached("running"))
        resume_at = stored(first_part)[-1].id
        rest = await read_frames(on_a, events_url, last_event_id=resume_at, until=terminal)
        frames = await follower
        assert await statuses_of(dashboard, job_id) == ["queued", "running", "succeeded"]

    seen = stored(frames)
    assert [int(f.id or 0) for f in seen] == list(range(1, len(seen) + 1))
    statuses = [f.data["status"] for f in seen if f.type == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    outputs = [f for f in seen if f.type == "output"]
    assert outputs and all(f.data["kind"] == "image" for f in outputs)
    assert seen.index(outputs[-1]) < len(seen) - 1  # outputs come before the end
    running_at = frames.index(next(f for f in seen if f.data.get("status") == "running"))
    progress = [f for f in frames[running_at:] if f.type == "progress"]
    assert progress, "no progress crossed from B to A"
    assert any(p.data["steps"] == 10 for p in progress), progress
    # Resumed on A from an event read on B: exactly the rest, in order.
    assert ids(first_part) == ids(seen)[: len(stored(first_part))]
    assert ids(rest) == ids([f for f in seen if int(f.id or 0) > int(resume_at or 0)])
