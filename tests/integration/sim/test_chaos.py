"""The chaos knobs: stalled prompts, cut WebSockets and CUDA out-of-memory errors.

Every test pins its seed and uses a rate of 1.0 (or 0.0), so where each knob strikes is
fixed; nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.integration.sim.conftest import (
    Sim,
    basic_prompt,
    interrupted_like_real,
    kinds,
    sd_prompt,
    start_sim,
)

STEP_MS = 5

OOM_MESSAGE = (
    "Allocation on device 0 would exceed allowed memory. (out of memory)\n"
    "Currently allocated     : 7.12 GiB\n"
    "Requested               : 1.25 GiB\n"
    "Device limit            : 8.00 GiB\n"
    "Free (according to CUDA): 590.00 MiB\n"
    "PyTorch limit (set by user-supplied memory fraction)\n"
    "                        : 17179869184.00 GiB\n"
    # ComfyUI's tips for an OOM_EXCEPTION, verbatim from its execution.py
    "This error means you ran out of memory on your GPU.\n\n"
    "TIPS: If the workflow worked before you might have accidentally set the batch_size to "
    "a large number."
)


async def running_ids(sim: Sim) -> list[str]:
    queue = (await sim.http.get("/queue")).json()
    return [item[1] for item in queue["queue_running"]]


async def assert_silent(sim: Sim, ws: Any, bystander: str) -> None:
    """Several step times pass without a message, the server answering all the while."""
    for _ in range(5):
        await asyncio.sleep(STEP_MS * 4 / 1000)
        assert (await sim.http.get("/system_stats")).status_code == 200
    other = await sim.socket(bystander)  # a new socket is greeted as usual
    assert other.received[-1]["type"] == "status"
    with pytest.raises(TimeoutError):
        await ws.next(within=0.2)


async def test_stall_rate_one_hangs_until_interrupted(tmp_path: Path) -> None:
    # Seed 11 stalls the first prompt in its KSampler and the second as ImageInvert starts.
    async for sim in start_sim(tmp_path, step_ms=STEP_MS, seed=11, stall_rate=1.0):
        ws = await sim.socket("probe")
        stalled = await sim.submit(sd_prompt(steps=6))
        got = await ws.until("progress", value=3, prompt_id=stalled)
        progress = [
            m["data"]["value"] for m in got if isinstance(m, dict) and m["type"] == "progress"
        ]
        assert progress == [1, 2, 3]
        assert kinds([await ws.next()]) == ["bin1"]  # the step's preview, then silence
        await assert_silent(sim, ws, "bystander-1")
        assert await running_ids(sim) == [stalled]
        assert (await sim.http.get(f"/history/{stalled}")).json() == {}

        # A targeted interrupt ends it exactly as it ends any running prompt.
        await sim.http.post("/interrupt", json={"prompt_id": stalled})
        await interrupted_like_real(sim, ws, stalled)  # outputs and meta empty too

        # A node that is not a sampler stalls right after its ``executing``.
        second = await sim.submit(basic_prompt(7))
        await ws.until("executing", node="2", prompt_id=second)
        await assert_silent(sim, ws, "bystander-2")
        assert await running_ids(sim) == [second]
        await sim.http.post("/interrupt", content=b"")  # global
        got = await ws.until_done(second)
        interrupted = next(
            m for m in got if isinstance(m, dict) and m["type"] == "execution_interrupted"
        )["data"]
        assert (interrupted["node_id"], interrupted["node_type"]) == ("2", "ImageInvert")
        assert interrupted["executed"] == ["1"]
        assert (await sim.history(second))["status"]["status_str"] == "error"
        assert await running_ids(sim) == []
        assert ("POST", "/interrupt", {"prompt_id": stalled}) in sim.server.log

        # A server stopped under a stalled prompt goes away as promptly as ever.
        third = await sim.submit(basic_prompt(8))
        await ws.until("execution_start", prompt_id=third)


async def test_zero_rates_change_nothing(tmp_path: Path) -> None:
    knobs = {"stall_rate": 0.0, "ws_drop_rate": 0.0, "oom_rate": 0.0}
    async for sim in start_sim(tmp_path, step_ms=STEP_MS, seed=11, **knobs):
        ws = await sim.socket("probe")
        prompt_id = await sim.submit(sd_prompt(steps=6))
        got = await ws.until_done(prompt_id)
        assert kinds(got)[-3:] == ["execution_success", "status", "executing"]
        progress = [
            m["data"]["value"] for m in got if isinstance(m, dict) and m["type"] == "progress"
        ]
        assert progress == [1, 2, 3, 4, 5, 6]
        assert "execution_error" not in kinds(got)
        entry = await sim.history(prompt_id)
        assert entry["status"]["status_str"] == "success"
        assert list(entry["outputs"]) == ["9"]
        # The socket was never cut.
        await sim.http.post("/prompt", json={"prompt": basic_prompt(3), "client_id": "probe"})
        assert kinds(await ws.until_idle())[-1] == "status"


async def test_ws_drop_rate_one_cuts_the_socket_while_the_prompt_runs_on(tmp_path: Path) -> None:
    async for sim in start_sim(tmp_path, step_ms=STEP_MS, seed=5, ws_drop_rate=1.0):
        ws = await sim.socket("probe")
        watcher = await sim.socket("watcher")
        prompt_id = await sim.submit(sd_prompt(steps=4))
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            while True:
                await ws.next()
        # Cut like a network failure: no close frame either way.
        assert (closed.value.rcvd, closed.value.sent) == (None, None)
        # The very first message of the run was the one cut, so none of it arrived.
        assert not {"execution_start", "progress", "execution_success"} & set(kinds(ws.received))

        entry = await sim.history(prompt_id)
        assert entry["status"]["status_str"] == "success"
        assert entry["status"]["completed"] is True
        assert [m[0] for m in entry["status"]["messages"]] == [
            "execution_start",
            "execution_cached",
            "execution_success",
        ]
        assert entry["outputs"]["9"]["images"][0]["filename"] == "sd_00001_.png"
        assert (sim.data_dir / "output" / "sd_00001_.png").exists()
        assert await running_ids(sim) == []

        # The client comes back under the same id and finds an idle server.
        again = await sim.socket("probe")
        assert again.received[-1]["data"]["sid"] == "probe"
        assert again.received[-1]["data"]["status"]["exec_info"]["queue_remaining"] == 0
        # Only the prompt's own client was cut: the watcher saw the queue empty again.
        assert kinds(await watcher.until_idle())[-1] == "status"


async def test_oom_rate_one_fails_like_a_cuda_out_of_memory(tmp_path: Path) -> None:
    async for sim in start_sim(tmp_path, step_ms=STEP_MS, seed=2, oom_rate=1.0):
        ws = await sim.socket("probe")
        prompt_id = await sim.submit(sd_prompt(steps=3))
        got = await ws.until_done(prompt_id)
        assert kinds(got)[-3:] == ["execution_error", "status", "executing"]
        assert "progress" not in kinds(got)
        error = next(m for m in got if isinstance(m, dict) and m["type"] == "execution_error")[
            "data"
        ]
        assert (error["node_id"], error["node_type"]) == ("3", "KSampler")
        assert error["exception_type"] == "torch.OutOfMemoryError"
        assert error["exception_message"] == OOM_MESSAGE
        assert sorted(error["executed"]) == ["4", "5", "6", "7"]
        assert error["current_inputs"]["steps"] == [3]
        assert error["traceback"][-1].endswith("    ...\n")
        assert "in sample\n" in error["traceback"][-1]

        entry = await sim.history(prompt_id)
        assert entry["status"]["status_str"] == "error"
        assert entry["status"]["completed"] is False
        assert [m[0] for m in entry["status"]["messages"]] == [
            "execution_start",
            "execution_cached",
            "execution_error",
        ]
        assert entry["status"]["messages"][-1][1] == error
        assert (entry["outputs"], entry["meta"]) == ({}, {})

        # Without a sampler some other node runs out of memory.
        other = await sim.submit(basic_prompt(9))
        got = await ws.until_done(other)
        error = next(m for m in got if isinstance(m, dict) and m["type"] == "execution_error")[
            "data"
        ]
        assert error["node_type"] in {"EmptyImage", "ImageInvert", "SaveImage"}
        assert (error["exception_type"], error["exception_message"]) == (
            "torch.OutOfMemoryError",
            OOM_MESSAGE,
        )

        # What a client does next: free the GPU, as the real body asks.
        body = {"unload_models": True, "free_memory": True}
        freed = await sim.http.post("/free", json=body)
        assert (freed.status_code, freed.content) == (200, b"")
        assert ("POST", "/free", body) in sim.server.log
        assert (await sim.http.post("/api/free", content=b"")).status_code == 500
        assert ("POST", "/free", None) in sim.server.log


async def test_a_seed_replays_the_same_chaos(tmp_path: Path) -> None:
    knobs = {"seed": 4, "fail_rate": 0.5, "oom_rate": 0.5, "step_ms": 0}
    runs: list[list[tuple[str, str | None]]] = []
    for n in range(2):
        async for sim in start_sim(tmp_path / str(n), **knobs):
            seen = []
            for color in range(6):
                prompt_id = await sim.submit(basic_prompt(color), client_id=None)
                entry = await sim.history(prompt_id)
                last = entry["status"]["messages"][-1]
                seen.append((last[0], last[1].get("exception_type")))
            runs.append(seen)
    assert runs[0] == runs[1]
    assert {t for _, t in runs[0]} == {None, "RuntimeError", "torch.OutOfMemoryError"}
