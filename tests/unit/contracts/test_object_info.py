from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from comfygate.contracts import Workflow, load_workflows, validate_against_object_info

from .conftest import WORKFLOWS, contract, graph

Load = Callable[..., Workflow]


@pytest.mark.parametrize(
    "name", ["txt2img", "img2img", "image-ops", "animated-webp", "preview-any"]
)
def test_example_workflows_fit_a_real_comfyui(name: str, object_info: dict[str, Any]) -> None:
    wf = load_workflows(WORKFLOWS)[name]
    assert validate_against_object_info(wf, object_info) == []


def test_the_base_graph_fits(load: Load, object_info: dict[str, Any]) -> None:
    assert validate_against_object_info(load(), object_info) == []


def test_unknown_class_and_input(load: Load, object_info: dict[str, Any]) -> None:
    g = graph()
    g["2"]["class_type"] = "ImageInverse"
    g["3"]["inputs"]["sharpness"] = 3
    del g["3"]["inputs"]["crop"]
    problems = validate_against_object_info(load(graph=g), object_info)
    assert "node '2' (ImageInverse \"Invert\"): unknown class_type 'ImageInverse'" in problems
    assert "node '3' (ImageScale \"Scale\"): ImageScale has no input 'sharpness'" in problems
    assert "node '3' (ImageScale \"Scale\"): required input 'crop' is missing" in problems


@pytest.mark.parametrize(
    ("node", "key", "value", "expected"),
    [
        ("3", "upscale_method", "cubic", "'cubic' is not one of"),
        ("1", "width", 0, "0 is below the minimum 1"),
        ("1", "color", 2**24, "16777216 is above the maximum 16777215"),
        ("1", "width", 6.5, "6.5 is not an integer"),
        ("4", "filename_prefix", 3, "3 is not a string"),
        ("2", "image", "pic.png", "takes a link from a IMAGE output"),
    ],
)
def test_literal_values(
    load: Load, object_info: dict[str, Any], node: str, key: str, value: Any, expected: str
) -> None:
    g = graph()
    g[node]["inputs"][key] = value
    c = contract(width=None, color=None)
    problems = validate_against_object_info(load(graph=g, contract=c), object_info)
    assert len(problems) == 1
    assert f"input {key!r}: {expected}" in problems[0]


def test_links(load: Load, object_info: dict[str, Any]) -> None:
    g = graph()
    g["2"]["inputs"]["image"] = ["9", 0]
    g["3"]["inputs"]["image"] = ["1", 1]
    g["4"]["inputs"]["images"] = ["5", 0]
    g["5"] = {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}}
    problems = validate_against_object_info(load(graph=g), object_info)
    assert any("input 'image' links to missing node '9'" in p for p in problems)
    assert any("reads output 1 of node '1', which has 1 output(s)" in p for p in problems)
    assert any("input 'images' takes IMAGE but node '5' output 0 is INT" in p for p in problems)


def test_file_backed_lists_are_not_checked(load: Load, object_info: dict[str, Any]) -> None:
    g = graph()
    g["5"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}}
    g["6"] = {"class_type": "LoadImage", "inputs": {"image": "mine.png"}}
    g["7"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}
    ckpt = {
        "type": "string",
        "enum": ["y.safetensors"],
        "x-bind": {"node": "5", "input": "ckpt_name"},
    }
    c = contract(
        ckpt=ckpt,
        picture={"type": "string", "x-kind": "image", "x-bind": {"node": "6", "input": "image"}},
    )
    assert validate_against_object_info(load(graph=g, contract=c), object_info) == []


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            {"type": "integer", "minimum": 0, "maximum": 10},
            "allows values below the input's minimum 1",
        ),
        ({"type": "integer", "minimum": 1}, "allows values above the input's maximum 16384"),
        (
            {"type": "string", "minimum": 1, "maximum": 2},
            "is of type 'string' but the input takes INT",
        ),
        (
            {"type": "number", "minimum": 1, "maximum": 2},
            "is of type 'number' but the input takes INT",
        ),
    ],
)
def test_contract_ranges_within_the_node(
    load: Load, object_info: dict[str, Any], schema: dict[str, Any], expected: str
) -> None:
    c = contract(width={**schema, "x-bind": {"node": "Canvas", "input": "width"}})
    problems = validate_against_object_info(load(contract=c), object_info)
    assert problems == [
        f"parameter 'width' -> node '1' (EmptyImage \"Canvas\") input 'width': {expected}"
    ]


def test_enum_outside_the_node_choices(load: Load, object_info: dict[str, Any]) -> None:
    free = {"type": "string", "x-bind": {"node": "Scale", "input": "upscale_method"}}
    bad = {**free, "enum": ["bilinear", "cubic"]}
    assert any(
        "accepts any string but the input takes only" in p
        for p in validate_against_object_info(load(contract=contract(m=free)), object_info)
    )
    assert any(
        "allows ['cubic'] which the input does not offer" in p
        for p in validate_against_object_info(load(contract=contract(m=bad)), object_info)
    )


def test_example_value_outside_the_node_range(load: Load, object_info: dict[str, Any]) -> None:
    # A contract may be looser than the node; the examples and defaults then show it.
    c = contract(
        scale={"type": "integer", "default": 20000, "x-bind": {"node": "Scale", "input": "width"}}
    )
    c["x-comfygate"] = {"examples": [{"params": {"scale": 30000}}]}
    problems = validate_against_object_info(load(contract=c), object_info)
    assert any("default 20000 is above the maximum 16384" in p for p in problems)
    assert any("examples[0] 30000 is above the maximum 16384" in p for p in problems)


def test_image_kind_on_a_plain_input(load: Load, object_info: dict[str, Any]) -> None:
    c = contract(
        pic={
            "type": "string",
            "x-kind": "image",
            "x-bind": {"node": "Save", "input": "filename_prefix"},
        }
    )
    problems = validate_against_object_info(load(contract=c), object_info)
    assert any("x-kind image needs an image upload input" in p for p in problems)


def test_declared_outputs_must_be_output_nodes(load: Load, object_info: dict[str, Any]) -> None:
    c = contract()
    c["x-comfygate"] = {"outputs": ["Save", "Scale"]}
    problems = validate_against_object_info(load(contract=c), object_info)
    assert problems == [
        "x-comfygate.outputs: node '3' (ImageScale \"Scale\") is not an output node"
    ]


def test_v3_combo_choices(load: Load, object_info: dict[str, Any]) -> None:
    g = graph()
    g["5"] = {
        "class_type": "ImageQuantize",
        "inputs": {"image": ["1", 0], "colors": 4, "dither": "bayer-3"},
    }
    g["6"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}
    dither = {
        "type": "string",
        "enum": ["none", "bayer-2"],
        "x-bind": {"node": "5", "input": "dither"},
    }
    wf = load(graph=g, contract=contract(dither=dither))
    problems = validate_against_object_info(wf, object_info)
    assert len(problems) == 1
    assert "input 'dither': 'bayer-3' is not one of ['none', 'floyd-steinberg'" in problems[0]
