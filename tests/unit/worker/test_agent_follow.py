"""The agent following one prompt on a fake ComfyUI, from submission to its report.

The test plays the server: it moves the prompt through the fake's queue, sends the
socket messages and writes the /history entry. The agent's clock is a FakeClock, so a
timeout or a grace period passes when the test advances it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest

from comfygate.clock import FakeClock
from comfygate.comfy.messages import (
    Executed,
    Executing,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Preview,
)
from comfygate.comfy.messages import Progress as StepProgress
from comfygate.worker.agent import Agent
from tests.unit.worker.fakes import (
    DictBlobs,
    FakeComfy,
    FakeTransport,
    Report,
    errored,
    image,
    interrupted,
    succeeded,
)
from tests.unit.worker.helpers import LEASE
from tests.wait import until

P = LEASE.prompt_id
GRAPH = {
    "3": {"class_type": "KSampler", "inputs": {}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "out"}},
}
SAVED = {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}


@dataclass
class Rig:
    comfy: FakeComfy
    transport: FakeTransport
    clock: FakeClock
    agent: Agent

    async def submitted(self) -> None:
        """Hand the agent the job and wait for its prompt at the backend."""
        self.transport.leases.put_nowait(replace(LEASE, graph=GRAPH))
        await until(lambda: ("submit", P) in self.comfy.calls, "the prompt to be submitted")

    async def running(self) -> None:
        await self.submitted()
        self.comfy.start(P)
        self.comfy.send(ExecutionStart(P))

    async def report(self) -> Report:
        [report] = await until(lambda: self.transport.reports, "the job's report")
        return report


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    comfy, transport, clock = FakeComfy(), FakeTransport(), FakeClock()
    agent = Agent(
        agent_id="a",
        pool="main",
        comfy=comfy,
        transport=transport,
        clock=clock,
        blobs=DictBlobs(),
        capacity=1,
        interrupt_grace_s=60.0,
    )
    # The socket's silence is timed by the event loop: short, so a test that waits for
    # the agent to ask /history waits milliseconds.
    agent.quiet_s = agent.stopping_quiet_s = 0.02
    task = asyncio.create_task(agent.run())
    await comfy.connected()
    yield Rig(comfy, transport, clock, agent)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_run_reports_throttled_progress_then_its_outputs(rig: Rig) -> None:
    await rig.running()
    rig.clock.advance(1)
    rig.comfy.send(Executing(P, "3"))
    await until(lambda: len(rig.transport.progress_sent) == 1, "progress on the first node")
    # Within a quarter second of the last report: counted, not sent. The preview after
    # them says when the agent has read them.
    rig.comfy.send(StepProgress(P, "3", 2, 10), StepProgress(P, "3", 5, 10))
    rig.comfy.send(Preview("image/jpeg", b"preview", prompt_id=P))
    await until(lambda: rig.transport.previews, "the preview")
    rig.clock.advance(1)
    rig.comfy.send(StepProgress(P, "3", 6, 10))
    await until(lambda: len(rig.transport.progress_sent) == 2, "progress on a step")
    assert rig.transport.progress_sent[1].value == 0.3  # 60 % of one node of two
    assert rig.transport.progress_sent[1].current_node == "KSampler"
    rig.comfy.send(Executed(P, "9", SAVED))
    await until(lambda: ("view", "a.png") in rig.comfy.calls, "the early fetch of the output")
    rig.comfy.end(succeeded(P, {"9": (image("a.png"),)}))
    rig.comfy.send(ExecutionSuccess(P))

    report = await rig.report()
    assert report.kind == "complete"
    assert [o.key for o in report.outputs] == [f"{LEASE.outputs_prefix}/9-0.png"]
    assert report.progress is not None and report.progress.value == 1.0
    assert rig.transport.previews == [b"preview"]
    # The early fetch is the one listed: the file was read from the backend once.
    assert rig.comfy.calls.count(("view", "a.png")) == 1
    assert rig.comfy.submitted[P]["9"]["inputs"]["filename_prefix"].startswith("comfygate/")


async def test_a_node_error_fails_the_job_for_good(rig: Rig) -> None:
    await rig.running()
    rig.comfy.send(ExecutionError(P, "3", "KSampler", "builtins.ValueError", "bad seed"))
    report = await rig.report()
    assert report.kind == "fail" and report.failure is not None
    assert (report.failure.code, report.failure.message) == (
        "execution_failed",
        "ValueError: bad seed",
    )
    assert report.failure.node_id == "3" and not report.retryable


async def test_out_of_memory_frees_the_backend_and_is_retried(rig: Rig) -> None:
    await rig.running()
    rig.comfy.end(errored(P, "torch.OutOfMemoryError", "CUDA out of memory", node_id="3"))
    # No message: the socket stays quiet and /history tells.
    report = await rig.report()
    assert report.failure is not None and report.failure.code == "out_of_memory"
    assert report.retryable
    assert ("free", "") in rig.comfy.calls


async def test_a_cancel_interrupts_the_running_prompt(rig: Rig) -> None:
    rig.comfy.heeds_interrupts = False  # the test says when it stops
    await rig.running()
    rig.transport.cancel()
    await until(lambda: ("interrupt", P) in rig.comfy.calls, "the interrupt")
    assert not rig.transport.reports  # canceled only once the prompt has stopped
    rig.comfy.end(interrupted(P))
    rig.comfy.send(ExecutionInterrupted(P, "3", "KSampler"))
    assert (await rig.report()).kind == "canceled"


async def test_a_cancel_of_a_pending_prompt_takes_it_out_of_the_queue(rig: Rig) -> None:
    await rig.submitted()
    rig.transport.cancel()
    assert (await rig.report()).kind == "canceled"
    assert ("delete_queued", P) in rig.comfy.calls
    assert ("interrupt", P) not in rig.comfy.calls
    assert rig.comfy.pending == []


async def test_a_cancel_after_success_changes_nothing(rig: Rig) -> None:
    rig.agent.quiet_s = 30.0  # the cancel, not the silence, makes it look
    await rig.running()
    rig.comfy.end(succeeded(P, {"9": (image("a.png"),)}))
    rig.transport.cancel()
    assert (await rig.report()).kind == "complete"
    assert ("interrupt", P) not in rig.comfy.calls


async def test_an_interrupt_the_prompt_ignores_lets_the_job_go_and_the_backend_down(
    rig: Rig,
) -> None:
    rig.comfy.heeds_interrupts = False
    await rig.running()
    rig.transport.cancel()
    await until(lambda: ("interrupt", P) in rig.comfy.calls, "the interrupt")
    rig.clock.advance(61)  # past the grace
    assert (await rig.report()).kind == "canceled"
    assert rig.agent.down
    rig.comfy.end(interrupted(P))  # it stops at last
    await until(lambda: not rig.agent.down, "the backend to be up again")


async def test_a_run_past_its_timeout_is_interrupted_and_fails(rig: Rig) -> None:
    await rig.running()
    rig.clock.advance(1)
    rig.comfy.send(Executing(P, "3"))
    # Reported, so read: the timeout counts from then at the latest.
    await until(lambda: rig.transport.progress_sent, "the run to start")
    rig.clock.advance(LEASE.timeout_s + 1)
    report = await rig.report()
    assert report.failure is not None and report.failure.code == "timeout"
    assert ("interrupt", P) in rig.comfy.calls


async def test_a_dropped_socket_finds_the_prompt_finished_in_history(rig: Rig) -> None:
    await rig.running()
    rig.comfy.drop_socket()
    # It finished while the socket was away: no message will ever say so.
    rig.comfy.end(succeeded(P, {"9": (image("a.png"),)}))
    report = await rig.report()
    assert report.kind == "complete"
    assert [o.node_id for o in report.outputs] == ["9"]
    assert ("prompt_state", P) in rig.comfy.calls
    assert rig.comfy.connects == 2


async def test_a_restarted_backend_that_forgot_the_prompt_fails_it_for_a_retry(rig: Rig) -> None:
    await rig.running()
    rig.comfy.restart()
    await until(lambda: rig.comfy.connects == 2, "the socket to come back")
    report = await rig.report()
    assert report.failure is not None and report.failure.code == "backend_restarted"
    assert report.retryable


async def test_a_lost_lease_stops_the_prompt_and_reports_nothing(rig: Rig) -> None:
    await rig.running()
    rig.transport.lose()
    await until(lambda: ("interrupt", P) in rig.comfy.calls, "the prompt to be stopped")
    await until(lambda: not rig.agent.current_jobs, "the agent to let the job go")
    assert rig.transport.reports == []


async def test_a_prompt_adopted_after_a_restart_is_followed_not_submitted_again(rig: Rig) -> None:
    rig.comfy.pending.append(P)  # submitted by the agent before it restarted
    rig.comfy.start(P)
    adopted = replace(LEASE, graph=GRAPH)
    following = asyncio.create_task(rig.agent.execute(adopted, resume=True))
    await until(lambda: ("prompt_state", P) in rig.comfy.calls, "a look at the prompt")
    assert rig.agent.current_jobs == (LEASE.job_id,)
    rig.comfy.end(succeeded(P, {"9": (image("a.png"),)}))
    report = await rig.report()
    await following
    assert report.kind == "complete" and [o.node_id for o in report.outputs] == ["9"]
    assert ("submit", P) not in rig.comfy.calls
