"""Text parameters: bounded by the contract (or the default), no control characters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from comfygate.contracts import Workflow, validate_params
from comfygate.contracts.text import DEFAULT_MAX_LENGTH, bound_strings
from comfygate.errors import InvalidParams

from .conftest import contract, graph

Load = Callable[..., Workflow]


@pytest.fixture
def wf(load: Load) -> Workflow:
    g = graph()
    g["4"]["inputs"]["filename_prefix"] = "t"
    c = contract(
        prompt={
            "type": "string",
            "maxLength": 2000,
            "x-bind": {"node": "Save", "input": "filename_prefix"},
        },
        label={"type": "string", "maxLength": 40, "x-bind": {"node": "Scale", "input": "crop"}},
        free={"type": "string", "x-bind": {"node": "Scale", "input": "upscale_method"}},
    )
    return load(graph=g, contract=c)


def refusal(wf: Workflow, **params: object) -> list[dict[str, str]]:
    with pytest.raises(InvalidParams) as err:
        validate_params(wf, params)
    assert err.value.status_code == 422
    details: list[dict[str, str]] = err.value.details
    return details


@pytest.mark.parametrize("bad", ["\x00", "\x1b[2J", "\r", "\x7f", "\x85", "\ud800", "\x08"])
def test_control_characters_are_refused_naming_the_field(wf: Workflow, bad: str) -> None:
    [detail] = refusal(wf, prompt=f"a cat{bad}on a mat")
    assert detail["path"] == "/prompt" and detail["keyword"] == "x-text"
    assert f"U+{ord(bad[0]):04X}" in detail["message"]


def test_multiline_text_may_break_lines_and_tab(wf: Workflow) -> None:
    filled = validate_params(wf, {"prompt": "a cat\n\ton a mat", "free": "x\ny"})
    assert filled["prompt"] == "a cat\n\ton a mat"
    # emoji sequences and right-to-left text are text, not control characters
    validate_params(wf, {"prompt": "👩‍🚀 \u202eabc", "label": "ok"})


def test_single_line_text_refuses_line_breaks(wf: Workflow) -> None:
    [detail] = refusal(wf, label="two\nlines")
    assert detail["path"] == "/label" and "U+000A" in detail["message"]


def test_a_string_without_maxlength_gets_the_default_bound(wf: Workflow) -> None:
    validate_params(wf, {"free": "x" * DEFAULT_MAX_LENGTH})
    [detail] = refusal(wf, free="x" * (DEFAULT_MAX_LENGTH + 1))
    assert detail["path"] == "/free" and detail["keyword"] == "maxLength"
    [detail] = refusal(wf, label="x" * 41)
    assert detail["path"] == "/label" and detail["keyword"] == "maxLength"


def test_bound_strings_publishes_the_bound_and_leaves_enums_alone() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "string", "maxLength": 5},
            "c": {"type": "string", "enum": ["x"]},
            "d": {"type": "array", "items": {"type": "string"}},
        },
    }
    bounded = bound_strings(schema)
    props = bounded["properties"]
    assert props["a"]["maxLength"] == DEFAULT_MAX_LENGTH and props["b"]["maxLength"] == 5
    assert "maxLength" not in props["c"]
    assert props["d"]["items"]["maxLength"] == DEFAULT_MAX_LENGTH
    assert "maxLength" not in schema["properties"]["a"]  # a copy
