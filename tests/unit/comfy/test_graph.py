from __future__ import annotations

import copy
from typing import Any

import pytest

from comfygate.comfy.graph import output_nodes, set_input, set_output_prefix
from tests.recordings import object_info
from tests.unit.comfy.recorded import history_sample


def load_scale_save() -> dict[str, Any]:
    _, entry = history_sample("history_load_scale_save.json")
    graph: dict[str, Any] = entry["prompt"][2]
    return graph


def test_set_output_prefix_gives_each_save_node_its_folder() -> None:
    graph = load_scale_save()
    graph["9"] = {
        "class_type": "SaveAnimatedWEBP",
        "inputs": {"images": ["2", 0], "filename_prefix": "ComfyUI"},
    }
    before = copy.deepcopy(graph)
    out = set_output_prefix(graph, "comfygate/job-1/2")
    assert graph == before  # untouched
    assert out["3"]["inputs"]["filename_prefix"] == "comfygate/job-1/2/3/scaled"
    assert out["9"]["inputs"]["filename_prefix"] == "comfygate/job-1/2/9/ComfyUI"
    assert out["4"] == graph["4"]  # PreviewImage has no prefix
    assert out["3"]["inputs"]["images"] == ["2", 0]


def test_set_output_prefix_leaves_linked_prefixes() -> None:
    graph = {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": ["7", 0]}}}
    assert set_output_prefix(graph, "a/b") == graph


@pytest.mark.parametrize("prefix", ["", "/", "a/../b", "..", "a//b", "a\\b"])
def test_set_output_prefix_refuses_escaping_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError):
        set_output_prefix(load_scale_save(), prefix)


def test_set_input_copies() -> None:
    graph = load_scale_save()
    out = set_input(graph, "1", "image", "comfygate/x (1).png")
    assert out["1"]["inputs"]["image"] == "comfygate/x (1).png"
    assert graph["1"]["inputs"]["image"] == "gw/job1/probe_sub.png"
    assert out["2"] is graph["2"]
    with pytest.raises(KeyError):
        set_input(graph, "99", "x", 1)


def test_set_input_on_node_without_inputs() -> None:
    assert set_input({"1": {"class_type": "X"}}, "1", "a", 2) == {
        "1": {"class_type": "X", "inputs": {"a": 2}}
    }


def test_output_nodes_from_object_info() -> None:
    info = object_info()
    assert output_nodes(load_scale_save(), info) == ("3", "4")
    graph = {"10": {"class_type": "PreviewAny"}, "2": {"class_type": "SaveImage"}}
    assert output_nodes(graph, info) == ("2", "10")
    assert output_nodes({"1": {"class_type": "NoSuch"}}, info) == ()


def test_output_nodes_without_object_info() -> None:
    graph = load_scale_save()
    graph["12"] = {"class_type": "MySaver", "inputs": {"filename_prefix": "x"}}
    graph["b"] = {"class_type": "PreviewAny", "inputs": {}}
    assert output_nodes(graph) == ("3", "4", "12", "b")
