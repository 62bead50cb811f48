from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import pytest

from comfygate.contracts import (
    MAX_SAFE_INTEGER,
    Binding,
    Workflow,
    image_bindings,
    patch_graph,
    validate_params,
)
from comfygate.errors import InvalidParams

from .conftest import contract, graph

Load = Callable[..., Workflow]


@pytest.fixture
def wf(load: Load) -> Workflow:
    g = graph()
    g["5"] = {
        "class_type": "LoadImage",
        "inputs": {"image": "example.png"},
        "_meta": {"title": "In"},
    }
    g["6"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}
    c = contract(
        steps={
            "type": "integer",
            "minimum": 1,
            "maximum": 50,
            "multipleOf": 1,
            "default": 20,
            "x-bind": {"node": "Canvas", "input": "batch_size"},
        },
        size={
            "type": "integer",
            "minimum": 8,
            "maximum": 1024,
            "multipleOf": 8,
            "default": 128,
            "x-bind": [{"node": "Scale", "input": "width"}, {"node": "Scale", "input": "height"}],
        },
        method={
            "type": "string",
            "enum": ["nearest-exact", "bilinear"],
            "default": "nearest-exact",
            "x-bind": {"node": "Scale", "input": "upscale_method"},
        },
        prefix={
            "type": "string",
            "maxLength": 5,
            "x-bind": {"node": "Save", "input": "filename_prefix"},
        },
        day={"type": "string", "format": "date", "x-bind": {"node": "Scale", "input": "crop"}},
        seed={
            "type": "integer",
            "x-random": True,
            "minimum": 0,
            "maximum": MAX_SAFE_INTEGER,
            "x-bind": {"node": "Canvas", "input": "height"},
        },
        picture={"type": "string", "x-kind": "image", "x-bind": {"node": "In", "input": "image"}},
    )
    c["required"] = ["prefix"]
    return load(graph=g, contract=c)


def details(wf: Workflow, params: Any) -> list[dict[str, str]]:
    with pytest.raises(InvalidParams) as exc:
        validate_params(wf, params, rng=random.Random(1))
    result: list[dict[str, str]] = exc.value.details
    return result


@pytest.mark.parametrize(
    ("params", "path", "keyword", "message"),
    [
        ({"steps": "5"}, "/steps", "type", "'5' is not of type 'integer'"),
        ({"steps": 0}, "/steps", "minimum", "0 is less than the minimum of 1"),
        ({"steps": 51}, "/steps", "maximum", "51 is greater than the maximum of 50"),
        ({"size": 100}, "/size", "multipleOf", "100 is not a multiple of 8"),
        ({"method": "cubic"}, "/method", "enum", "'cubic' is not one of"),
        ({"prefix": "toolong"}, "/prefix", "maxLength", "'toolong' is too long"),
        ({"day": "2024-02-30"}, "/day", "format", "'2024-02-30' is not a 'date'"),
        ({"bogus": 1}, "/bogus", "additionalProperties", "unknown parameter 'bogus'"),
        ({"a/b~c": 1}, "/a~1b~0c", "additionalProperties", "unknown parameter 'a/b~c'"),
        ({}, "/prefix", "required", "'prefix' is a required property"),
    ],
)
def test_each_error_kind(
    wf: Workflow, params: dict[str, Any], path: str, keyword: str, message: str
) -> None:
    valid = {} if keyword == "required" else {"prefix": "ok"}
    found = details(wf, {**valid, **params})
    assert [d["path"] for d in found] == [path]
    assert found[0]["keyword"] == keyword
    assert message in found[0]["message"]


def test_every_failing_field_sorted_by_path(wf: Workflow) -> None:
    found = details(wf, {"steps": 0, "size": 7, "method": 1, "zzz": 1, "aaa": 2})
    assert [(d["path"], d["keyword"]) for d in found] == [
        ("/aaa", "additionalProperties"),
        ("/method", "enum"),
        ("/method", "type"),
        ("/prefix", "required"),
        ("/size", "minimum"),
        ("/size", "multipleOf"),
        ("/steps", "minimum"),
        ("/zzz", "additionalProperties"),
    ]


def test_message_summarises_the_fields(wf: Workflow) -> None:
    with pytest.raises(InvalidParams) as exc:
        validate_params(wf, {"steps": 0})
    assert "/steps: 0 is less than the minimum of 1" in exc.value.message
    assert exc.value.status_code == 422


def test_params_must_be_an_object(wf: Workflow) -> None:
    assert details(wf, ["steps"]) == [
        {"path": "", "message": "params must be an object", "keyword": "type"}
    ]


def test_defaults_are_filled(wf: Workflow) -> None:
    valid = validate_params(wf, {"prefix": "x", "color": 5}, rng=random.Random(0))
    assert valid["width"] == 64
    assert valid["color"] == 5
    assert valid["steps"] == 20
    assert valid["size"] == 128
    assert valid["method"] == "nearest-exact"
    assert "picture" not in valid  # no default, not required here


def test_filled_defaults_are_copies(load: Load) -> None:
    g = graph()
    g["4"]["inputs"]["tags"] = []
    tags = {
        "type": "array",
        "items": {"type": "string"},
        "default": ["a"],
        "x-bind": {"node": "Save", "input": "tags"},
    }
    wf = load(graph=g, contract=contract(tags=tags))
    first = validate_params(wf, {})
    first["tags"].append("b")
    assert validate_params(wf, {})["tags"] == ["a"]
    patched = patch_graph(wf, validate_params(wf, {}))
    patched["4"]["inputs"]["tags"].append("c")
    assert wf.parameters["tags"].schema["default"] == ["a"]


def test_random_is_filled_reproducibly_and_safe(wf: Workflow) -> None:
    a = validate_params(wf, {"prefix": "x"}, rng=random.Random(7))["seed"]
    b = validate_params(wf, {"prefix": "x"}, rng=random.Random(7))["seed"]
    c = validate_params(wf, {"prefix": "x"}, rng=random.Random(8))["seed"]
    assert a == b != c
    assert isinstance(a, int) and 0 <= a <= MAX_SAFE_INTEGER


def test_random_without_bounds_stays_safe(load: Load) -> None:
    c = contract(
        color={"type": "integer", "x-random": True, "x-bind": {"node": "1", "input": "color"}}
    )
    wf = load(contract=c)
    rng = random.Random(3)
    seeds = [validate_params(wf, {}, rng=rng)["color"] for _ in range(200)]
    assert all(0 <= s <= MAX_SAFE_INTEGER for s in seeds)
    assert max(seeds) > 2**50  # drawn from the whole safe range, not a small one


def test_random_respects_bounds(load: Load) -> None:
    c = contract(
        color={
            "type": "integer",
            "x-random": True,
            "exclusiveMinimum": 10,
            "maximum": 12,
            "x-bind": {"node": "1", "input": "color"},
        }
    )
    wf = load(contract=c)
    rng = random.Random(0)
    assert {validate_params(wf, {}, rng=rng)["color"] for _ in range(60)} == {11, 12}


def test_random_given_is_kept_and_checked(wf: Workflow) -> None:
    assert validate_params(wf, {"prefix": "x", "seed": 5})["seed"] == 5
    assert details(wf, {"prefix": "x", "seed": MAX_SAFE_INTEGER + 1})[0]["path"] == "/seed"


def test_patch_graph_writes_every_binding_and_keeps_the_original(wf: Workflow) -> None:
    before = copy.deepcopy(wf.graph)
    valid = validate_params(
        wf, {"prefix": "x", "size": 256, "seed": 9, "picture": "upload-1"}, rng=random.Random(0)
    )
    patched = patch_graph(wf, valid)
    assert wf.graph == before
    assert patched["3"]["inputs"]["width"] == patched["3"]["inputs"]["height"] == 256
    assert patched["1"]["inputs"]["height"] == 9
    assert patched["4"]["inputs"]["filename_prefix"] == "x"
    assert patched["5"]["inputs"]["image"] == "example.png"  # images: the agent's job
    assert patched["2"] == before["2"]
    assert "day" not in valid and patched["3"]["inputs"]["crop"] == "disabled"
    patched["1"]["inputs"]["width"] = 1
    assert wf.graph["1"]["inputs"]["width"] == 64


def test_patch_graph_refuses_unknown_names(wf: Workflow) -> None:
    with pytest.raises(InvalidParams, match="unknown parameter 'nope'"):
        patch_graph(wf, {"nope": 1})


def test_image_bindings(wf: Workflow) -> None:
    assert image_bindings(wf, {"prefix": "x"}) == []
    assert image_bindings(wf, {"prefix": "x", "picture": "up-1"}) == [
        ("picture", "up-1", (Binding("5", "image"),))
    ]
