"""The example workflows shipped in workflows/ load, and their examples run through."""

from __future__ import annotations

import random
from typing import Any

import pytest
from PIL import Image

from comfygate.contracts import check_workflows, load_workflows, patch_graph, validate_params

from .conftest import WORKFLOWS

NAMES = ["animated-webp", "image-ops", "img2img", "preview-any", "txt2img"]


def test_every_example_workflow_loads() -> None:
    loaded = load_workflows(WORKFLOWS)
    assert sorted(loaded) == NAMES
    for wf in loaded.values():
        assert wf.examples, wf.name
        assert wf.title != wf.name
        assert wf.outputs


@pytest.mark.parametrize("name", NAMES)
def test_examples_validate_and_patch(name: str) -> None:
    wf = load_workflows(WORKFLOWS)[name]
    images = {n for n, p in wf.parameters.items() if p.kind == "image"}
    for example in wf.examples:
        params = {**{n: "upload-id" for n in images}, **example["params"]}
        valid = validate_params(wf, params, rng=random.Random(0))
        graph = patch_graph(wf, valid)
        for pname, value in example["params"].items():
            for b in wf.parameters[pname].bindings:
                assert graph[b.node_id]["inputs"][b.input] == value


@pytest.mark.parametrize("name", NAMES)
def test_example_picture(name: str) -> None:
    path = WORKFLOWS / name / "example.png"
    assert path.stat().st_size <= 30_000
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert min(img.size) >= 64


def test_image_ops_first_example_is_small() -> None:
    wf = load_workflows(WORKFLOWS)["image-ops"]
    params = validate_params(wf, wf.examples[0]["params"])
    assert params["width"] * params["height"] <= 64 * 64
    assert params["scale_width"] * params["scale_height"] <= 128 * 128
    assert validate_params(wf, {})  # runs with no parameters at all


def test_txt2img_binds_by_title() -> None:
    wf = load_workflows(WORKFLOWS)["txt2img"]
    by_class = {
        p: wf.graph[b.node_id]["class_type"]
        for p, param in wf.parameters.items()
        for b in param.bindings
    }
    assert by_class["prompt"] == by_class["negative_prompt"] == "CLIPTextEncode"
    assert wf.parameters["prompt"].bindings != wf.parameters["negative_prompt"].bindings
    assert wf.parameters["seed"].random
    assert wf.parameters["cfg"].advanced and wf.parameters["sampler_name"].advanced
    assert validate_params(wf, {"prompt": "x"}, rng=random.Random(0))["seed"] <= 2**53 - 1


def test_img2img_has_an_image_parameter() -> None:
    wf = load_workflows(WORKFLOWS)["img2img"]
    (param,) = [p for p in wf.parameters.values() if p.kind == "image"]
    (binding,) = param.bindings
    assert wf.graph[binding.node_id]["class_type"] == "LoadImage"
    assert binding.input == "image"


def test_check_workflows(object_info: dict[str, Any]) -> None:
    assert check_workflows(WORKFLOWS) == []
    assert check_workflows(WORKFLOWS, object_info) == []
