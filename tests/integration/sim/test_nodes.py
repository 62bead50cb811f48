"""The sampler stand-in, previews, text and animation outputs, and the failure knobs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import httpx
import websockets

from tests.integration.sim.conftest import Sim, basic_prompt, kinds, sd_prompt, start_sim


def _ticks(messages: list[Any]) -> list[Any]:
    """progress_state / progress / frames only, while the sampler runs."""
    wanted = {"progress_state", "progress", "bin1", "bin4"}
    out = []
    for kind, msg in zip(kinds(messages), messages, strict=True):
        if kind in wanted and (
            kind != "progress_state" or msg["data"]["nodes"].get("3", {}).get("max") == 3
        ):
            out.append(kind)
    return out


async def test_ksampler_progress_and_type1_previews(sim: Sim) -> None:
    ws = await sim.socket("probe")
    prompt_id = await sim.submit(sd_prompt(steps=3))
    got = await ws.until_done(prompt_id)
    progress = [m["data"] for m in got if isinstance(m, dict) and m["type"] == "progress"]
    assert progress == [
        {"value": v, "max": 3, "prompt_id": prompt_id, "node": "3"} for v in (1, 2, 3)
    ]
    # Per step: snapshot, progress, then the JPEG frame (legacy clients).
    assert _ticks(got)[:9] == ["progress_state", "progress", "bin1"] * 3
    frame = next(m for m in got if isinstance(m, bytes))
    assert struct.unpack(">II", frame[:8]) == (1, 1) and frame[8:11] == b"\xff\xd8\xff"
    executing = [m["data"]["node"] for m in got if isinstance(m, dict) and m["type"] == "executing"]
    # ComfyUI's ExecutionList order: depth-first from the output, inputs popped last-first.
    assert executing == ["4", "5", "7", "6", "3", "8", "9", None]
    entry = await sim.history(prompt_id)
    assert entry["outputs"]["9"]["images"] == [
        {"filename": "sd_00001_.png", "subfolder": "", "type": "output"}
    ]


async def test_feature_flags_switch_previews_to_type4(sim: Sim) -> None:
    ws = await sim.socket("probe", preview_metadata=True)
    assert ws.received[-1] == {
        "type": "feature_flags",
        "data": {"supports_preview_metadata": True, "max_upload_size": 104857600},
    }
    prompt_id = await sim.submit(sd_prompt(steps=3))
    got = await ws.until_done(prompt_id)
    assert _ticks(got)[:9] == ["progress_state", "bin4", "progress"] * 3
    frame = next(m for m in got if isinstance(m, bytes))
    (kind, size) = struct.unpack(">II", frame[:8])
    metadata = json.loads(frame[8 : 8 + size])
    assert kind == 4 and metadata == {
        "node_id": "3",
        "prompt_id": prompt_id,
        "display_node_id": "3",
        "parent_node_id": None,
        "real_node_id": "3",
        "image_type": "image/jpeg",
    }
    assert frame[8 + size : 8 + size + 3] == b"\xff\xd8\xff"


async def test_same_seed_and_prompt_give_the_same_picture(sim: Sim) -> None:
    first = await sim.history(await sim.submit(sd_prompt(seed=42, text="a lighthouse")))
    await sim.http.post("/free", json={"free_memory": True})
    second = await sim.history(await sim.submit(sd_prompt(seed=42, text="a lighthouse")))
    other = await sim.history(await sim.submit(sd_prompt(seed=43, text="a lighthouse")))
    names = [e["outputs"]["9"]["images"][0]["filename"] for e in (first, second, other)]
    assert names == ["sd_00001_.png", "sd_00002_.png", "sd_00003_.png"]
    out = sim.data_dir / "output"
    assert (out / names[0]).read_bytes() == (out / names[1]).read_bytes()
    assert (out / names[0]).read_bytes() != (out / names[2]).read_bytes()


async def test_unknown_checkpoint_is_not_in_list(sim: Sim) -> None:
    prompt = sd_prompt()
    prompt["4"]["inputs"]["ckpt_name"] = "nope.safetensors"
    body = (await sim.http.post("/prompt", json={"prompt": prompt})).json()
    error = body["node_errors"]["4"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert (
        error["extra_info"]["input_config"][0]
        == (await sim.http.get("/object_info/CheckpointLoaderSimple")).json()[
            "CheckpointLoaderSimple"
        ]["input"]["required"]["ckpt_name"][0]
    )


async def test_preview_any_and_image_size_text(sim: Sim) -> None:
    ws = await sim.socket("probe")
    prompt = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 96, "height": 64, "batch_size": 2, "color": 0},
        },
        "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": "hello"}},
    }
    prompt_id = await sim.submit(prompt)
    got = await ws.until_done(prompt_id)
    frame = next(m for m in got if isinstance(m, bytes))
    assert frame == struct.pack(">II", 3, 1) + b"2" + b"width: 96, height: 64\n batch size: 2"
    entry = await sim.history(prompt_id)
    assert entry["outputs"] == {"3": {"text": ["96"]}, "4": {"text": ["hello"]}}


async def test_save_animated_webp(sim: Sim) -> None:
    prompt = sd_prompt(steps=1)
    prompt["5"]["inputs"]["batch_size"] = 3  # three seeds, three different frames
    prompt["2"] = {
        "class_type": "ImageBlur",
        "inputs": {"image": ["8", 0], "blur_radius": 3, "sigma": 1.5},
    }
    prompt["9"] = {
        "class_type": "SaveAnimatedWEBP",
        "inputs": {
            "images": ["2", 0],
            "filename_prefix": "anim/clip",
            "fps": 6.0,
            "lossless": False,
            "quality": 80,
            "method": "default",
        },
    }
    entry = await sim.history(await sim.submit(prompt))
    assert entry["outputs"]["9"] == {
        "images": [{"filename": "clip_00001_.webp", "subfolder": "anim", "type": "output"}],
        "animated": [True],
    }
    from PIL import Image

    with Image.open(sim.data_dir / "output" / "anim" / "clip_00001_.webp") as img:
        assert (img.format, getattr(img, "n_frames", 1)) == ("WEBP", 3)


async def test_fail_rate_one_fails_every_prompt_like_a_real_error(tmp_path: Path) -> None:
    async for sim in start_sim(tmp_path, fail_rate=1.0, seed=3):
        ws = await sim.socket("probe")
        prompt_id = await sim.submit(basic_prompt())
        got = await ws.until_done(prompt_id)
        assert kinds(got)[-3:] == ["execution_error", "status", "executing"]
        error = next(m for m in got if isinstance(m, dict) and m["type"] == "execution_error")[
            "data"
        ]
        assert set(error) == {
            "prompt_id", "node_id", "node_type", "executed", "exception_message",
            "exception_type", "traceback", "current_inputs", "current_outputs", "timestamp",
        }  # fmt: skip
        assert error["exception_type"] == "RuntimeError"
        assert error["traceback"][0].startswith(f'  File "{sim.data_dir.resolve()}/execution.py"')
        assert error["current_outputs"] == ["1", "2", "3"]
        entry = await sim.history(prompt_id)
        assert entry["status"]["status_str"] == "error"
        assert entry["status"]["messages"][-1][0] == "execution_error"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_crash_after_steps_kills_the_process(tmp_path: Path) -> None:
    port = _free_port()
    code = (
        "import asyncio, pathlib\n"
        "from comfygate.sim import SimConfig, run_sim\n"
        f"cfg = SimConfig(data_dir=pathlib.Path({str(tmp_path)!r}), step_ms=1,"
        " crash_after_steps=4)\n"
        f"asyncio.run(run_sim(cfg, '127.0.0.1', {port}))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 30)  # the "listening" line
        url = f"http://127.0.0.1:{port}"
        async with (
            websockets.connect(f"ws://127.0.0.1:{port}/ws?clientId=c") as ws,
            httpx.AsyncClient() as http,
        ):
            await ws.recv()
            body = {"prompt": sd_prompt(steps=10), "client_id": "c"}
            assert (await http.post(f"{url}/prompt", json=body)).status_code == 200
            progress = []
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    raw = await asyncio.wait_for(ws.recv(), 10)
                    if isinstance(raw, str) and json.loads(raw)["type"] == "progress":
                        progress.append(json.loads(raw)["data"]["value"])
        # The progress of the last step is flushed before the process dies.
        assert progress == [1, 2, 3, 4]
        assert await asyncio.wait_for(proc.wait(), 10) == 1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
