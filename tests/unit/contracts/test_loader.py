from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from comfygate.contracts import Binding, Workflow, load_workflow, load_workflows
from comfygate.errors import ContractError

from .conftest import Writer, contract, graph

Load = Callable[..., Workflow]


def problems_of(exc: pytest.ExceptionInfo[ContractError]) -> list[str]:
    details = exc.value.details
    assert isinstance(details, list)
    return details


def test_binds_by_title_and_by_id(load: Load) -> None:
    wf = load()
    assert wf.parameters["width"].bindings == (Binding("1", "width"),)  # title "Canvas"
    assert wf.parameters["color"].bindings == (Binding("1", "color"),)  # id "1"


def test_one_parameter_binds_several_nodes(load: Load) -> None:
    size = {
        "type": "integer",
        "default": 128,
        "minimum": 1,
        "maximum": 4096,
        "x-bind": [{"node": "Scale", "input": "width"}, {"node": "3", "input": "height"}],
    }
    wf = load(contract=contract(size=size))
    assert wf.parameters["size"].bindings == (Binding("3", "width"), Binding("3", "height"))


def test_keywords_become_parameter_fields(load: Load) -> None:
    seed = {"type": "integer", "x-random": True, "x-bind": {"node": "Canvas", "input": "color"}}
    method = {
        "type": "string",
        "enum": ["nearest-exact", "bilinear"],
        "default": "bilinear",
        "x-advanced": True,
        "x-bind": {"node": "Scale", "input": "upscale_method"},
    }
    wf = load(contract=contract(color=None, seed=seed, method=method))
    assert wf.parameters["seed"].random and not wf.parameters["seed"].advanced
    assert wf.parameters["method"].advanced and not wf.parameters["method"].random
    assert wf.parameters["width"].kind is None
    assert list(wf.parameters) == ["width", "seed", "method"]  # contract order


def test_defaults_of_the_settings(write: Writer) -> None:
    wf = load_workflow(write("my-flow"))
    assert wf.name == "my-flow"
    assert wf.title == "my-flow"
    assert wf.description == ""
    assert (wf.pool, wf.timeout_s, wf.max_attempts, wf.queue_ttl_s) == ("default", 600, 3, 3600)
    assert wf.retry_on_timeout is False
    assert wf.examples == ()
    assert wf.outputs == ("4",)  # the graph's only sink


def test_settings_are_read(load: Load) -> None:
    c = contract()
    c["x-comfygate"] = {
        "title": "Ops",
        "description": "d",
        "pool": "gpu-a",
        "timeout_s": 30.5,
        "max_attempts": 5,
        "queue_ttl_s": 60,
        "retry_on_timeout": True,
        "outputs": ["Save", "2"],
        "examples": [{"title": "one", "params": {"width": 8}}],
    }
    wf = load(contract=c)
    assert (wf.title, wf.description, wf.pool) == ("Ops", "d", "gpu-a")
    assert (wf.timeout_s, wf.max_attempts, wf.queue_ttl_s) == (30.5, 5, 60)
    assert wf.retry_on_timeout is True
    assert wf.outputs == ("4", "2")
    assert wf.examples == ({"title": "one", "params": {"width": 8}},)


def test_default_outputs_are_every_sink(load: Load) -> None:
    g = graph()
    g["5"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    assert load(graph=g).outputs == ("4", "5")


def test_duplicate_titles_name_the_nodes(load: Load) -> None:
    g = graph()
    g["2"]["_meta"]["title"] = "Canvas"
    with pytest.raises(ContractError) as exc:
        load(graph=g)
    message = str(exc.value)
    assert "contract.json" in message
    assert "parameter 'width'" in message
    assert "'Canvas' is held by 2 nodes (1, 2)" in message


def test_duplicate_titles_nobody_uses_are_fine(load: Load) -> None:
    g = graph()
    g["2"]["_meta"]["title"] = "Save"
    g["4"]["_meta"]["title"] = "Save"
    assert load(graph=g).outputs == ("4",)


def test_id_that_is_another_nodes_title_is_ambiguous(load: Load) -> None:
    g = graph()
    g["2"]["_meta"]["title"] = "1"
    with pytest.raises(ContractError, match=r"parameter 'color'.*'1' is the id of node 1 and "):
        load(graph=g)


def test_missing_node_names_file_parameter_and_node(load: Load) -> None:
    c = contract(width={"type": "integer", "x-bind": {"node": "Canvass", "input": "width"}})
    with pytest.raises(ContractError) as exc:
        load(contract=c)
    message = str(exc.value)
    assert str(Path("wf") / "contract.json") in message
    assert "parameter 'width'" in message
    assert "no node has the id or _meta.title 'Canvass'" in message


def test_missing_input_names_file_parameter_and_node(load: Load) -> None:
    c = contract(width={"type": "integer", "x-bind": {"node": "Canvas", "input": "widht"}})
    with pytest.raises(ContractError) as exc:
        load(contract=c)
    message = str(exc.value)
    assert "contract.json" in message
    assert "parameter 'width'" in message
    assert "node '1' (EmptyImage \"Canvas\") has no input 'widht'" in message
    assert "batch_size, color, height, width" in message


def test_binding_a_link_is_refused(load: Load) -> None:
    c = contract(src={"type": "string", "x-bind": {"node": "Invert", "input": "image"}})
    with pytest.raises(ContractError, match=r"parameter 'src'.*wired to node '1'"):
        load(contract=c)


def test_two_parameters_on_one_input_is_refused(load: Load) -> None:
    c = contract(other={"type": "integer", "x-bind": {"node": "1", "input": "width"}})
    with pytest.raises(
        ContractError, match=r"parameter 'other'.*already bound by parameter 'width'"
    ):
        load(contract=c)


def test_image_kind_must_bind_a_file_name(load: Load) -> None:
    c = contract(
        pic={"type": "string", "x-kind": "image", "x-bind": {"node": "1", "input": "width"}}
    )
    with pytest.raises(ContractError, match=r"parameter 'pic'.*holds 64"):
        load(contract=c)


def test_ui_format_export_is_refused(load: Load) -> None:
    ui = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": [[1, 4, 0, 3, 0]]}
    with pytest.raises(ContractError) as exc:
        load(graph=ui)
    assert "workflow.api.json" in str(exc.value)
    assert "UI-format export" in str(exc.value)
    assert "Export (API)" in str(exc.value)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ([], "must be a JSON object"),
        ({}, "has no nodes"),
        ({"1": {"inputs": {}}}, "node '1' has no class_type"),
        ({"1": {"class_type": "X"}}, "node '1' has no inputs object"),
        ({"1": {"class_type": "X", "inputs": {}, "_meta": {"title": 3}}}, "node '1' has a _meta"),
    ],
)
def test_graph_shape_problems(load: Load, bad: Any, expected: str) -> None:
    with pytest.raises(ContractError, match=expected):
        load(graph=bad)


def test_invalid_json_names_the_file(load: Load) -> None:
    with pytest.raises(ContractError, match=r"contract\.json: not valid JSON"):
        load(contract="{nope")


def test_missing_contract_file(write: Writer) -> None:
    folder = write()
    (folder / "contract.json").unlink()
    with pytest.raises(ContractError, match=r"contract\.json: file not found"):
        load_workflow(folder)


def test_bad_folder_name(write: Writer) -> None:
    with pytest.raises(ContractError, match="folder name"):
        load_workflow(write("has space"))


def test_required_without_property(load: Load) -> None:
    c = contract()
    c["required"] = ["width", "ghost"]
    with pytest.raises(ContractError, match="parameter 'ghost': listed in required"):
        load(contract=c)


def test_invalid_default_is_refused(load: Load) -> None:
    c = contract(
        width={
            "type": "integer",
            "maximum": 10,
            "default": 64,
            "x-bind": {"node": "1", "input": "width"},
        }
    )
    with pytest.raises(ContractError, match=r"parameter 'width': default 64 is invalid"):
        load(contract=c)


def test_examples_must_validate(load: Load) -> None:
    c = contract()
    c["x-comfygate"] = {"examples": [{"title": "big", "params": {"width": 0, "nope": 1}}]}
    with pytest.raises(ContractError) as exc:
        load(contract=c)
    problems = problems_of(exc)
    assert any("examples[0] ('big'): /nope: unknown parameter 'nope'" in p for p in problems)
    assert any(
        "examples[0] ('big'): /width: 0 is less than the minimum of 1" in p for p in problems
    )


def test_examples_may_leave_out_a_required_image(load: Load) -> None:
    g = graph()
    g["5"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    c = contract(
        pic={"type": "string", "x-kind": "image", "x-bind": {"node": "5", "input": "image"}}
    )
    c["required"] = ["pic", "width"]
    c["x-comfygate"] = {"examples": [{"params": {"color": 3}}]}
    wf = load(graph=g, contract=c)
    assert wf.parameters["pic"].kind == "image"
    c["x-comfygate"] = {"examples": [{"params": {"pic": 5}}]}
    with pytest.raises(ContractError, match=r"examples\[0\]: /pic: 5 is not of type 'string'"):
        load(graph=g, contract=c)


def test_one_folder_reports_every_problem(load: Load) -> None:
    c = contract(
        width={"type": "integer", "x-bind": {"node": "Nope", "input": "width"}},
        color={"type": "integer", "x-bind": {"node": "1", "input": "colour"}},
    )
    with pytest.raises(ContractError) as exc:
        load(contract=c)
    problems = problems_of(exc)
    assert len(problems) == 2
    assert str(exc.value).startswith("2 workflow problems:")


def test_load_workflows_collects_every_folder(tmp_path: Path, write: Writer) -> None:
    write("good")
    write(
        "broken-a",
        contract=contract(width={"type": "integer", "x-bind": {"node": "X", "input": "w"}}),
    )
    write("broken-b", graph={"nodes": [], "links": []})
    (tmp_path / "only-contract").mkdir()
    (tmp_path / "only-contract" / "contract.json").write_text("{}")
    (tmp_path / "notes").mkdir()  # no workflow files: not a workflow
    (tmp_path / "_drafts").mkdir()
    (tmp_path / "_drafts" / "workflow.api.json").write_text("not json")
    with pytest.raises(ContractError) as exc:
        load_workflows(tmp_path)
    problems = problems_of(exc)
    assert len(problems) == 3
    assert any("broken-a" in p and "'X'" in p for p in problems)
    assert any("broken-b" in p and "UI-format" in p for p in problems)
    assert any("only-contract" in p and "workflow.api.json: file not found" in p for p in problems)


def test_load_workflows_by_name(tmp_path: Path, write: Writer) -> None:
    write("b")
    write("a")
    loaded = load_workflows(tmp_path)
    assert list(loaded) == ["a", "b"]
    assert loaded["a"].path == tmp_path / "a"


def test_load_workflows_needs_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="workflows folder not found"):
        load_workflows(tmp_path / "missing")


def test_loaded_graph_is_the_file_content(write: Writer) -> None:
    folder = write()
    wf = load_workflow(folder)
    assert wf.graph == json.loads((folder / "workflow.api.json").read_text())
