"""The chaos knobs in the executor, away from any socket: where each one strikes."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from comfygate.clock import SYSTEM_CLOCK
from comfygate.sim.config import SimConfig
from comfygate.sim.executor import (
    OOM_MESSAGE,
    OOM_TIPS,
    Knobs,
    OutOfMemoryError,
    PromptExecutor,
)
from comfygate.sim.hub import Hub
from comfygate.sim.specs import NodeSpecs
from comfygate.sim.validation import full_type_name


def sd_prompt(steps: int = 3) -> dict[str, Any]:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sim.safetensors"}},
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 1,
                "steps": steps,
                "cfg": 8,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["6", 0],
                "latent_image": ["5", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "u"}},
    }


class RecordingHub(Hub):
    def __init__(self) -> None:
        super().__init__(asyncio.get_running_loop())
        self.sent: list[tuple[str | int, str | None, str | None]] = []
        self.changed = asyncio.Event()

    def emit(
        self, event: str | int, data: Any, sid: str | None = None, *, cut: str | None = None
    ) -> None:
        self.sent.append((event, sid, cut))
        self.changed.set()


def executor(root: Path, hub: Hub, seed: int, **rates: float) -> PromptExecutor:
    knobs = Knobs(
        root=str(root), step_ms=0, fail_rate=0.0, crash_after_steps=None, overhead_ms=0, **rates
    )
    return PromptExecutor(
        specs=NodeSpecs(root / "input"),
        hub=hub,
        clock=SYSTEM_CLOCK,
        knobs=knobs,
        rng=random.Random(seed),
        on_crash=lambda: None,
    )


@pytest.mark.parametrize("name", ["fail_rate", "stall_rate", "ws_drop_rate", "oom_rate"])
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_rates_must_be_probabilities(tmp_path: Path, name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{name} must lie in 0..1"):
        SimConfig(data_dir=tmp_path, **{name: value})  # type: ignore[arg-type]
    assert getattr(SimConfig(data_dir=tmp_path, **{name: 1.0}), name) == 1.0  # type: ignore[arg-type]


def test_the_oom_is_reported_as_torch_reports_it() -> None:
    ex = OutOfMemoryError(OOM_MESSAGE)
    assert isinstance(ex, RuntimeError)
    assert full_type_name(ex) == "torch.OutOfMemoryError"
    assert str(ex).startswith("Allocation on device 0 would exceed allowed memory. (out of memory)")
    assert OOM_TIPS.startswith("This error means you ran out of memory on your GPU.\n\nTIPS: ")


async def test_an_oom_prefers_the_sampler_and_costs_one_prompt(tmp_path: Path) -> None:
    for seed in range(5):
        hub = RecordingHub()
        ex = executor(tmp_path / str(seed), hub, seed, oom_rate=1.0)
        outcome = await ex.execute(sd_prompt(), "p", {"client_id": "c"}, ["9"])
        assert not outcome.success
        event, error = outcome.messages[-1]
        assert (event, error["node_id"], error["exception_type"]) == (
            "execution_error",
            "3",
            "torch.OutOfMemoryError",
        )
        assert error["exception_message"] == f"{OOM_MESSAGE}\n{OOM_TIPS}"
        assert not any(event == "progress" for event, _, _ in hub.sent)


async def test_a_seed_cuts_the_same_messages(tmp_path: Path) -> None:
    cuts = []
    for run in range(2):
        hub = RecordingHub()
        ex = executor(tmp_path / str(run), hub, 9, ws_drop_rate=0.3)
        outcome = await ex.execute(sd_prompt(steps=5), "p", {"client_id": "c"}, ["9"])
        ex.finished("p")
        assert outcome.success  # a cut socket never stops the prompt
        assert {cut for _, _, cut in hub.sent} == {None, "c"}
        cuts.append([cut for _, _, cut in hub.sent])
    assert cuts[0] == cuts[1]


async def test_zero_rates_draw_no_random_numbers(tmp_path: Path) -> None:
    hub = RecordingHub()
    ex = executor(tmp_path, hub, 3, stall_rate=0.0, ws_drop_rate=0.0, oom_rate=0.0)
    before = ex.rng.getstate()
    outcome = await ex.execute(sd_prompt(), "p", {"client_id": "c"}, ["9"])
    assert outcome.success
    assert ex.rng.getstate() == before
    assert all(cut is None for _, _, cut in hub.sent)


async def test_a_stall_waits_for_an_interrupt(tmp_path: Path) -> None:
    # One worker thread: the sampler draws each step's preview in a thread before it
    # reports the step, so a no-op sent after a step's preview returns only after it.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    hub = RecordingHub()
    ex = executor(tmp_path, hub, 0, stall_rate=1.0)  # seed 0 picks the KSampler
    run = asyncio.create_task(ex.execute(sd_prompt(steps=4), "p", {"client_id": "c"}, ["9"]))

    def steps() -> int:
        return [e for e, _, _ in hub.sent].count("progress")

    async with asyncio.timeout(10):
        while steps() < 2:
            hub.changed.clear()
            await hub.changed.wait()
    # A third step, had it begun, sent its preview to the thread first: this sentinel
    # comes back after that preview and after the step it reports.
    await asyncio.to_thread(lambda: None)
    assert steps() == 2  # the middle of 4 steps, and no further
    assert not run.done()
    sent = len(hub.sent)
    ex.interrupt()
    outcome = await run
    assert not outcome.success
    assert outcome.messages[-1][0] == "execution_interrupted"
    assert outcome.messages[-1][1]["node_id"] == "3"
    assert [e for e, _, _ in hub.sent[sent:]] == ["execution_interrupted"]


def test_the_sim_command_takes_and_checks_the_knobs() -> None:
    from typer.testing import CliRunner

    from comfygate.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["sim", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    for flag in ("--stall-rate", "--ws-drop-rate", "--oom-rate", "--seed"):
        assert flag in shown.output
    assert "torch.OutOfMemoryError" in shown.output
    refused = runner.invoke(app, ["sim", "--ws-drop-rate", "1.5"], env={"COLUMNS": "200"})
    assert refused.exit_code == 2
    assert "ws_drop_rate must lie in 0..1" in refused.output
