from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from comfygate.sim.specs import NodeSpecs
from comfygate.sim.validation import types_match, validate_prompt


@dataclass
class Sim:
    """A simulator's node specs over its input folder, as its /prompt validates."""

    input_dir: Path

    def check(self, prompt: Any, targets: list[str] | None = None) -> Any:
        return validate_prompt(prompt, targets, NodeSpecs(self.input_dir), self.input_dir, "/root")


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    (tmp_path / "input").mkdir()
    return Sim(tmp_path / "input")


def empty(width: Any = 64) -> dict[str, Any]:
    return {
        "class_type": "EmptyImage",
        "inputs": {"width": width, "height": 8, "batch_size": 1, "color": 0},
    }


def save(source: str, prefix: str = "p") -> dict[str, Any]:
    return {"class_type": "SaveImage", "inputs": {"images": [source, 0], "filename_prefix": prefix}}


def test_cycle_fails_without_node_errors(sim: Sim) -> None:
    prompt = {
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": save("2"),
    }
    verdict = sim.check(prompt)
    # As recorded (errors_and_clients.json "cycle_post"): no hint at all.
    assert not verdict.ok
    assert verdict.error == {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "",
        "extra_info": {},
    }
    assert verdict.node_errors == {}


def test_int_output_into_image_input_is_a_type_mismatch(sim: Sim) -> None:
    prompt = {
        "1": empty(),
        "2": save("3"),
        "3": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
    }
    verdict = sim.check(prompt)
    assert verdict.error["details"] == (
        "Return type mismatch between linked nodes: "
        "images, received_type(INT) mismatch input_type(IMAGE)"
    )
    assert verdict.node_errors["2"]["errors"][0]["extra_info"]["linked_node"] == ["3", 0]


def test_anything_goes_into_preview_any(sim: Sim) -> None:
    prompt = {"1": empty(), "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    assert sim.check(prompt).ok
    assert (
        types_match("INT", "*")
        and types_match("INT,FLOAT", "FLOAT")
        and not types_match("INT", "IMAGE")
    )


def test_only_reachable_nodes_are_checked_and_coerced(sim: Sim) -> None:
    prompt = {"1": empty(width="12"), "2": save("1"), "9": empty(width="abc")}
    verdict = sim.check(prompt)
    assert verdict.ok and verdict.outputs == ["2"]
    assert prompt["1"]["inputs"]["width"] == 12
    assert prompt["9"]["inputs"]["width"] == "abc"


def test_every_failing_node_is_tagged_with_later_failing_outputs(sim: Sim) -> None:
    # A quirk of the real loop: node 1's errors also list output 4, which never uses node 1.
    prompt = {"1": empty(0), "2": save("1"), "3": empty(-5), "4": save("3")}
    verdict = sim.check(prompt)
    assert verdict.node_errors["1"]["dependent_outputs"] == ["2", "4"]
    assert verdict.node_errors["3"]["dependent_outputs"] == ["4"]
    # Only the outputs' own reasons make the details; theirs are empty here.
    assert verdict.error["details"] == ""


def test_partial_execution_targets_pick_outputs(sim: Sim) -> None:
    prompt = {"1": empty(), "2": save("1"), "3": save("1", "b")}
    assert sim.check(prompt, ["3"]).outputs == ["3"]
    assert sim.check(prompt, ["1"]).error["type"] == "prompt_no_outputs"


def test_load_image_checks_the_file_not_the_list(sim: Sim) -> None:
    folder = sim.input_dir / "gw" / "job1"
    folder.mkdir(parents=True)
    (folder / "in.png").write_bytes(b"x")
    ok = {"1": {"class_type": "LoadImage", "inputs": {"image": "gw/job1/in.png"}}, "2": save("1")}
    assert sim.check(ok).ok
    missing = {"1": {"class_type": "LoadImage", "inputs": {}}, "2": save("1")}
    errors = sim.check(missing).node_errors["1"]["errors"]
    assert [e["type"] for e in errors] == ["required_input_missing"]


def test_long_lists_are_not_echoed(sim: Sim) -> None:
    prompt = {
        "1": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "sim-sd15.safetensors"},
        },
        "2": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": 5, "clip": ["1", 1]}},
        "4": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": 1,
                "steps": 2,
                "cfg": 7,
                "sampler_name": "warp",
                "scheduler": "normal",
                "positive": ["3", 0],
                "negative": ["3", 0],
                "latent_image": ["2", 0],
                "denoise": 1,
            },
        },
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": save("5"),
    }
    verdict = sim.check(prompt)
    (error,) = verdict.node_errors["4"]["errors"]
    assert error["details"] == "sampler_name: 'warp' not in (list of length 42)"
    assert error["extra_info"]["input_config"] is None
    assert prompt["3"]["inputs"]["text"] == "5"


def test_crashes_where_the_real_server_crashes(sim: Sim) -> None:
    with pytest.raises(TypeError):
        sim.check([1, 2])
