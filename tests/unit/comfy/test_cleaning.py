"""No traceback and no server path leaves comfy/, checked against real error captures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from comfygate.comfy.cleaning import clean_node_errors, clean_prompt_error, clean_text, scrub
from tests.recordings import sample

LEAKS = ("<comfy_root>", "<comfy_venv>", "traceback", 'File "', "execution.py")


def assert_clean(value: Any) -> None:
    text = json.dumps(value)
    for leak in LEAKS:
        assert leak not in text, leak


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cannot identify image file '<comfy_root>/input/not_really.png'\n",
            "cannot identify image file 'not_really.png'",
        ),
        ("open /home/ada/ComfyUI/models/x.safetensors failed", "open x.safetensors failed"),
        ("(/srv/comfy/input/a b.png)", "(a b.png)"),
        ("C:\\ComfyUI\\input\\x.png missing", "x.png missing"),
        ("see ~/ComfyUI/output/y.png", "see y.png"),
        ("<comfy_root>", ""),
        ('boom\nTraceback (most recent call last):\n  File "/x/y.py", line 1', "boom"),
        ("see https://example.com/a/b/c for help", "see https://example.com/a/b/c for help"),
        ("value 1/2/3 and/or width", "value 1/2/3 and/or width"),
        ("Value 0 smaller than min of 1", "Value 0 smaller than min of 1"),
    ],
)
def test_clean_text(text: str, expected: str) -> None:
    assert clean_text(text) == expected


def test_scrub_drops_tracebacks_from_real_error_history() -> None:
    history = sample("errors_and_clients.json#runtime_error_history")
    assert "traceback" in json.dumps(history)
    cleaned = scrub(history)
    assert_clean(cleaned)
    entry = cleaned["a58a6cad-3452-47c2-9a49-33056a047538"]
    error = entry["status"]["messages"][2][1]
    assert error["exception_message"] == "cannot identify image file 'not_really.png'"
    assert error["current_inputs"] == {"image": ["not_really.png"]}


REFUSED = [k for k, v in sample("post_prompt_errors.json").items() if v["status"] == 400]


@pytest.mark.parametrize("case", REFUSED)
def test_node_errors_of_every_recorded_refusal_are_clean(case: str) -> None:
    recorded = sample("post_prompt_errors.json")[case]
    prompt = recorded["request"].get("prompt")
    errors = clean_node_errors(recorded["response"]["node_errors"], prompt)
    top = clean_prompt_error(recorded["response"]["error"], prompt)
    assert_clean([errors, top])
    assert len(errors) == sum(
        len(e["errors"]) for e in recorded["response"]["node_errors"].values()
    )
    for error in errors:
        assert set(error) == {"node_id", "class_type", "type", "message", "details", "input_name"}
        assert error["class_type"] and error["message"]


def test_node_error_fields() -> None:
    recorded = sample("post_prompt_errors.json")["link_to_missing_node"]
    (error,) = clean_node_errors(recorded["response"]["node_errors"])
    assert error == {
        "node_id": "2",
        "class_type": "ImageInvert",
        "type": "exception_during_inner_validation",
        "message": "Exception when validating inner node",
        "details": "'99'",
        "input_name": "images",
    }


def test_top_level_error_names_its_node_from_the_graph() -> None:
    recorded = sample("post_prompt_errors.json")["unknown_class_type"]
    top = clean_prompt_error(recorded["response"]["error"], recorded["request"]["prompt"])
    assert top["node_id"] == "2"
    assert top["class_type"] == "NoSuchNode"
    assert top["type"] == "invalid_prompt"


def test_garbage_node_errors_are_ignored() -> None:
    assert clean_node_errors(None) == []
    assert clean_node_errors({"1": "x", "2": {"errors": ["y", {"message": "m"}]}}) == [
        {
            "node_id": "2",
            "class_type": None,
            "type": None,
            "message": "m",
            "details": "",
            "input_name": None,
        }
    ]
