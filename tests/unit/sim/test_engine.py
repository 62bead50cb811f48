from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from comfygate.sim.cache import NodeCache, load_image_fingerprint
from comfygate.sim.graph import ExecutionList
from comfygate.sim.images import picture, save_path
from comfygate.sim.queue import PromptQueue
from comfygate.sim.specs import NodeSpecs

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def load_scale_save() -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
        "2": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["1", 0],
                "upscale_method": "bilinear",
                "width": 8,
                "height": 8,
                "crop": "center",
            },
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


def run_order(
    prompt: dict[str, Any], outputs: list[str], cached: frozenset[str] = frozenset()
) -> list[str]:
    specs = NodeSpecs(Path("/nonexistent"))
    order = ExecutionList(prompt, specs.is_output, lambda n: n in cached)
    for node_id in outputs:
        order.add_node(node_id)
    seen = []
    while not order.is_empty():
        node_id = order.stage()
        seen.append(node_id)
        order.complete(node_id)
    return seen


def test_outputs_run_as_soon_as_they_can() -> None:
    # Recorded in ws_load_scale_save.json: 1, then the preview 4, then 2 and 3.
    assert run_order(load_scale_save(), ["4", "3"]) == ["1", "4", "2", "3"]
    assert run_order(load_scale_save(), ["3", "4"]) == ["1", "4", "2", "3"]


def test_cached_nodes_are_not_run_and_cut_their_inputs() -> None:
    assert run_order(load_scale_save(), ["3"], cached=frozenset({"2"})) == ["3"]


def test_cache_keys_ignore_node_ids_and_keep_one_prompt(tmp_path: Path) -> None:
    specs = NodeSpecs(tmp_path)
    cache = NodeCache()
    first: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 1},
        }
    }
    cache.set_prompt(first, specs, lambda *_: None)
    cache.set_outputs("1", ("img",))
    cache.set_prompt({"7": first["1"]}, specs, lambda *_: None)
    assert cache.outputs("7") == ("img",)
    other = {"7": {**first["1"], "inputs": {**first["1"]["inputs"], "color": 2}}}
    cache.set_prompt(other, specs, lambda *_: None)
    cache.set_prompt({"7": first["1"]}, specs, lambda *_: None)
    assert cache.outputs("7") is None  # dropped when a prompt without it ran


def test_load_image_is_keyed_by_file_content(tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(b"one")
    before = load_image_fingerprint(str(tmp_path), "in.png")
    (tmp_path / "in.png").write_bytes(b"two")
    assert before != load_image_fingerprint(str(tmp_path), "in.png")
    assert load_image_fingerprint(str(tmp_path), "missing.png") is None


def test_save_path_counts_per_prefix_and_keeps_subfolders(tmp_path: Path) -> None:
    out = str(tmp_path)
    folder, name, counter, subfolder, _ = save_path("gw/job1/scaled", out, 8, 8, NOW)
    assert (name, counter, subfolder) == ("scaled", 1, "gw/job1")
    for existing in (
        "scaled_00001_.png",
        "scaled_00007_.png",
        "scaledx_00009_.png",
        "other_00003_.png",
    ):
        Path(folder, existing).write_bytes(b"")
    assert save_path("gw/job1/scaled", out, 8, 8, NOW)[2] == 8
    assert save_path("other", out, 8, 8, NOW)[2] == 1
    assert save_path("%width%x%height%", out, 8, 6, NOW)[1] == "8x6"
    with pytest.raises(Exception, match="outside the output folder"):
        save_path("../../escape", out, 8, 8, NOW)


def test_pictures_depend_only_on_seed_prompt_and_model() -> None:
    a = picture(1, "fox", "m", 64, 48)
    assert a.tobytes() == picture(1, "fox", "m", 64, 48).tobytes()
    assert a.tobytes() != picture(2, "fox", "m", 64, 48).tobytes()
    assert a.tobytes() != picture(1, "owl", "m", 64, 48).tobytes()
    assert a.size == (64, 48)


async def test_queue_runs_lowest_number_first_and_deletes_only_pending() -> None:
    changes: list[int] = []
    queue = PromptQueue(lambda: changes.append(queue.remaining()))
    for number, prompt_id in ((0, "a"), (1, "b"), (-2, "front")):
        queue.put([number, prompt_id, {}, {}, []])
    taken = queue.get()
    assert taken is not None and taken[0][1] == "front"
    queue.delete("front")  # running: ignored
    queue.delete("b")
    assert [item[1] for item in queue.pending] == ["a"]
    queue.delete("a")  # the last one: wiped, which reports twice like ComfyUI
    assert changes == [1, 2, 3, 3, 2, 1, 1]
    queue.task_done(0, {"outputs": {}, "meta": {}}, {"status_str": "success"})
    assert list(queue.get_history()) == ["front"] and queue.remaining() == 0
