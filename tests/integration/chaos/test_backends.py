"""Sick backends: killed, restarted, failing, stalling, dropping sockets, out of memory;
and storage that refuses writes. Every job ends in a clear terminal state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from comfygate.comfy.client import ComfyClient, PromptState
from comfygate.errors import LeaseLost
from comfygate.jobs.model import HeartbeatReply, Lease
from comfygate.sim import SimServer
from tests.integration.chaos.tally import TERMINAL, report, tally
from tests.integration.conftest import GatewayFactory, RunningGateway, SimFactory, wait_status
from tests.wait import until


@dataclass
class Looks:
    """An agent's looks before it decides whether to take work, counted once ``counting``
    is set (when the job it must leave is queued) and only those that said no."""

    counting: bool = False
    seen: int = 0


# Each runs real processes through kills and restarts: tens of seconds on a busy machine.
pytestmark = pytest.mark.timeout(180)

CHAOS_LEASE = {"ttl_s": 6, "heartbeat_s": 2, "rescue_every_s": 1}


async def attempts(c: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await c.get(f"/v1/jobs/{job_id}/attempts")).json()["attempts"]
    return found


async def running_on(c: httpx.AsyncClient, job_id: str) -> str:
    await wait_status(c, job_id, "running")
    return str((await attempts(c, job_id))[-1]["backend"])


async def test_a_backend_killed_mid_job_the_job_finishes_elsewhere(
    start_sim: SimFactory, start_gateway: GatewayFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    sims = {s.url: s for s in [await start_sim(step_ms=100), await start_sim(step_ms=100)]}
    gateway = await start_gateway(*sims, lease=CHAOS_LEASE)
    async with gateway.client() as c:
        job = (await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 20}})).json()
        first = await running_on(c, job["id"])
        await sims[first].stop()  # gone like a killed process
        done = await wait_status(c, job["id"], "succeeded", "failed", within_s=60)
        tried = await attempts(c, job["id"])
    assert done["status"] == "succeeded", done
    assert [a["backend"] for a in tried] == [first, next(u for u in sims if u != first)]
    async with gateway.client() as c:
        result = await report(capsys, "backend killed", c, [job["id"]], gateway.gw.storage)
    assert result.lost == [] and result.duplicated == []
    assert tried[0]["outcome"] in ("backend_unreachable", "websocket_lost", "backend_restarted")


async def test_a_backend_restarted_under_a_running_job_runs_it_again(
    start_sim: SimFactory, start_gateway: GatewayFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = await start_sim(step_ms=100)
    gateway = await start_gateway(sim.url, lease=CHAOS_LEASE)
    async with gateway.client() as c:
        job = (await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 20}})).json()
        await running_on(c, job["id"])
        await sim.restart()  # ComfyUI comes back empty: the prompt is forgotten
        done = await wait_status(c, job["id"], "succeeded", "failed", within_s=60)
        tried = await attempts(c, job["id"])
    assert done["status"] == "succeeded" and len(tried) == 2, (done, tried)
    async with gateway.client() as c:
        result = await report(capsys, "backend restarted", c, [job["id"]], gateway.gw.storage)
    assert result.lost == [] and result.duplicated == []
    assert tried[0]["outcome"] in ("backend_restarted", "websocket_lost", "backend_unreachable")


async def test_a_cancel_racing_the_finish_ends_succeeded(
    gateway: RunningGateway, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cancels sent around the moment each prompt ends: a prompt that finished at the
    backend always makes its job succeeded, never canceled without its outputs."""
    comfy = ComfyClient(sim.url)
    try:
        async with gateway.client() as c:
            ids = []
            for n in range(12):
                job = (
                    await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 3}})
                ).json()
                ids.append(job["id"])
                await wait_status(c, job["id"], "running")
                await asyncio.sleep(0.01 * n)  # 0..110 ms: before, at and after the end
                await c.post(f"/v1/jobs/{job['id']}/cancel")
            outcomes = []
            for job_id in ids:
                job = await wait_status(c, job_id, "succeeded", "canceled", "failed")
                prompt_id = (await attempts(c, job_id))[-1]["prompt_id"]
                entry = await comfy.history(prompt_id)
                finished = entry is not None and entry.status_str == "success"
                outcomes.append((job["status"], finished))
            result = await report(capsys, "cancel racing the finish", c, ids, gateway.gw.storage)
            assert result.lost == [] and result.duplicated == []
    finally:
        await comfy.aclose()
    for status, finished in outcomes:
        assert status == ("succeeded" if finished else "canceled"), outcomes
    assert {s for s, _ in outcomes} == {"succeeded", "canceled"}, "the race was not run"


async def test_failures_stalls_socket_drops_and_oom_end_every_job_clearly(
    start_sim: SimFactory,
    start_gateway: GatewayFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    knobs = dict(step_ms=20, fail_rate=0.1, stall_rate=0.1, ws_drop_rate=0.02, oom_rate=0.15)
    sims = [await start_sim(seed=1, **knobs), await start_sim(seed=2, **knobs)]
    gateway = await start_gateway(*(s.url for s in sims), lease=CHAOS_LEASE)
    async with gateway.client() as c:
        ids = [
            (await c.post("/v1/workflows/chaos/jobs", json={"params": {"steps": 4}})).json()["id"]
            for _ in range(40)
        ]
        jobs = [await wait_status(c, i, *TERMINAL, within_s=120) for i in ids]
    await gateway.gw.sweeper.run_once(settle_s=0)
    result = await tally(jobs, gateway.gw.storage)
    with capsys.disabled():
        print("\n" + result.line("sick backends"))
    assert result.lost == [] and result.duplicated == []
    assert set(result.statuses) <= {"succeeded", "failed"}
    # Failures name their cause; out of memory was retried (after /free), not final.
    assert set(result.errors) <= {"execution_failed", "timeout", "out_of_memory"}
    assert result.statuses["succeeded"] > 0
    frees = sum(1 for s in sims for _, path, _ in s.log if path == "/free")
    assert frees > 0


async def test_a_storage_write_failure_fails_the_job_and_publishes_nothing(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = gateway.gw.storage
    real_put = storage.put_stream

    async def failing(key: str, chunks: AsyncIterable[bytes], content_type: str) -> Any:
        if key.startswith("outputs/"):
            await real_put(key, chunks, content_type)  # half written, then the disk fills
            raise OSError(28, "No space left on device")
        return await real_put(key, chunks, content_type)

    monkeypatch.setattr(storage, "put_stream", failing)
    async with gateway.client() as c:
        job = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        done = await wait_status(c, job["id"], "succeeded", "failed")
    assert done["status"] == "failed" and done["error"]["code"] == "storage_error"
    assert done["outputs"] == []
    assert await storage.stat(f"jobs/{job['id']}/output.json") is None
    await gateway.gw.sweeper.run_once(settle_s=0)
    assert await storage.list(f"outputs/{job['id']}") == []
    async with gateway.client() as c:
        result = await report(capsys, "storage write failure", c, [job["id"]], storage)
    assert result.lost == [] and result.duplicated == []


async def test_a_timeout_fails_the_job_unless_the_contract_retries_timeouts(
    start_sim: SimFactory, start_gateway: GatewayFactory
) -> None:
    sim = await start_sim(step_ms=20, stall_rate=1.0, seed=3)  # every prompt hangs
    gateway = await start_gateway(sim.url, lease=CHAOS_LEASE)
    async with gateway.client() as c:
        once = (await c.post("/v1/workflows/chaos/jobs", json={"params": {"steps": 4}})).json()
        failed = await wait_status(c, once["id"], "failed", "succeeded", within_s=30)
        again = (
            await c.post("/v1/workflows/stall-retry/jobs", json={"params": {"steps": 4}})
        ).json()
        retried = await wait_status(c, again["id"], "failed", "succeeded", within_s=60)
    assert failed["error"]["code"] == "timeout" and failed["attempts"] == 1
    assert retried["error"]["code"] == "timeout" and retried["attempts"] == 2


async def test_out_of_memory_frees_and_retries_on_another_backend(
    start_sim: SimFactory, start_gateway: GatewayFactory
) -> None:
    sick = await start_sim(oom_rate=1.0, seed=5)  # every prompt runs out of memory here
    well = await start_sim()
    gateway = await start_gateway(sick.url, well.url)
    well_agent = next(a for a in gateway.gw.agents if a.backend == well.url)
    # The sick backend leaves a retry to others only while the pool has another backend
    # asking for work: the well one must have asked before it is drained.
    deadline = asyncio.get_running_loop().time() + 30
    while gateway.gw.gate.backends_seen("default") != {sick.url, well.url}:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    async with gateway.client() as c:
        well_agent.drain()  # so the first attempt lands on the sick backend
        job = (await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 2}})).json()
        deadline = asyncio.get_running_loop().time() + 30
        while not (tried := await attempts(c, job["id"])) or tried[0]["outcome"] is None:
            assert asyncio.get_running_loop().time() < deadline, tried
            await asyncio.sleep(0.05)
        assert tried[0]["outcome"] == "out_of_memory"
        # Once the retry's backoff has passed, and the sick backend's agent has looked
        # at the queue since, it could take the job again; it must leave it to another
        # backend for a while.
        queued = await gateway.gw.store.get_job(job["id"])
        assert queued is not None and queued.not_before is not None
        looked_again = queued.not_before + timedelta(seconds=1.5)
        await asyncio.sleep(max(0.0, (looked_again - gateway.gw.clock.now()).total_seconds()))
        assert [a["backend"] for a in await attempts(c, job["id"])] == [sick.url]
        well_agent.resume()
        done = await wait_status(c, job["id"], "succeeded", "failed", within_s=30)
        tried = await attempts(c, job["id"])
    assert done["status"] == "succeeded", done
    assert [a["backend"] for a in tried] == [sick.url, well.url]
    assert any(path == "/free" for _, path, _ in sick.log)


async def test_an_ignored_interrupt_marks_the_backend_down_until_the_prompt_ends(
    start_sim: SimFactory, start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = await start_sim(step_ms=20, stall_rate=1.0, seed=9)  # every prompt hangs
    gateway = await start_gateway(sim.url, lease=CHAOS_LEASE, interrupt_grace_s=1)
    [agent] = gateway.gw.agents

    async def deaf(prompt_id: str | None = None) -> None:
        """A backend whose running prompt does not heed interrupts."""

    monkeypatch.setattr(agent.comfy, "interrupt", deaf)
    # A down agent looks at its stuck prompt before each decision to take work: a look
    # begun once the job is queued, answered "still running", is a decision not to.
    real_state = agent.comfy.prompt_state
    looks = Looks()

    async def prompt_state(prompt_id: str) -> PromptState:
        begun = looks.counting
        state = await real_state(prompt_id)
        looks.seen += begun and state == "running"
        return state

    monkeypatch.setattr(agent.comfy, "prompt_state", prompt_state)
    async with gateway.client() as c:
        stuck = (await c.post("/v1/workflows/chaos/jobs", json={"params": {"steps": 4}})).json()
        done = await wait_status(c, stuck["id"], "failed", "succeeded", within_s=30)
        assert done["error"]["code"] == "timeout"  # let go after timeout + grace
        assert agent.down
        waiting = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        looks.counting = True
        await until(lambda: looks.seen, "the down agent to look at its stuck prompt")
        assert (await c.get(f"/v1/jobs/{waiting['id']}")).json()["status"] == "queued"
        await sim.restart()  # the stuck prompt is gone: the backend is up again
        await until(lambda: not agent.down, "the agent to find its backend up again")
        await wait_status(c, waiting["id"], "running", "succeeded", "failed", within_s=30)


async def test_an_agent_whose_heartbeats_fail_takes_no_new_work(
    start_sim: SimFactory, start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = await start_sim(step_ms=100)
    gateway = await start_gateway(sim.url, lease=CHAOS_LEASE)
    [agent] = gateway.gw.agents
    agent.stop_leasing_after_s = 1.0  # 20 s in production
    real = gateway.gw.gate.heartbeat
    partitioned = True

    async def heartbeat(lease: Lease) -> HeartbeatReply:
        if partitioned:
            raise httpx.ConnectError("the gateway is unreachable")
        return await real(lease)

    monkeypatch.setattr(gateway.gw.gate, "heartbeat", heartbeat)
    # The agent asks this before each decision to take work: a True once the job is
    # queued is a decision not to.
    failing = agent.heartbeats_failing
    looks = Looks()

    def heartbeats_failing() -> bool:
        answer = failing()
        looks.seen += looks.counting and answer
        return answer

    monkeypatch.setattr(agent, "heartbeats_failing", heartbeats_failing)
    async with gateway.client() as c:
        long = (await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 50}})).json()
        await wait_status(c, long["id"], "running")
        # two failed beats, a second apart
        await until(failing, "the agent to count its heartbeats as failing")
        second = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        looks.counting = True
        await until(lambda: looks.seen, "the agent to decide on work with failing heartbeats")
        assert (await c.get(f"/v1/jobs/{second['id']}")).json()["status"] == "queued"
        partitioned = False  # the next beat gets through: work resumes
        await wait_status(c, second["id"], "succeeded", within_s=30)
        await c.post(f"/v1/jobs/{long['id']}/cancel")


async def test_an_agent_takes_work_again_once_its_failing_heartbeats_end_in_a_lost_lease(
    start_sim: SimFactory, start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its gateway was away long enough for the job to be rescued: when it answers again
    (lease_lost), nothing is left to renew, and the agent must not wait for a beat."""
    sim = await start_sim(step_ms=100)
    gateway = await start_gateway(sim.url, lease=CHAOS_LEASE)
    [agent] = gateway.gw.agents
    agent.stop_leasing_after_s = 1.0  # 20 s in production
    real = gateway.gw.gate.heartbeat
    answer: Exception = httpx.ConnectError("the gateway is unreachable")
    long_id = ""

    async def heartbeat(lease: Lease) -> HeartbeatReply:
        if lease.job_id == long_id:
            raise answer
        return await real(lease)

    monkeypatch.setattr(gateway.gw.gate, "heartbeat", heartbeat)
    async with gateway.client() as c:
        long = (await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 50}})).json()
        long_id = long["id"]
        await wait_status(c, long_id, "running")
        await until(agent.heartbeats_failing, "the agent to count its heartbeats as failing")
        second = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        answer = LeaseLost()
        await wait_status(c, second["id"], "succeeded", within_s=30)
        await c.post(f"/v1/jobs/{long_id}/cancel")
