from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from comfygate.contracts import Workflow, load_workflow
from tests import recordings

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = ROOT / "workflows"

# EmptyImage -> ImageInvert -> ImageScale -> SaveImage, titled like the example workflows.
GRAPH: dict[str, Any] = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0},
        "_meta": {"title": "Canvas"},
    },
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}, "_meta": {"title": "Invert"}},
    "3": {
        "class_type": "ImageScale",
        "inputs": {
            "image": ["2", 0],
            "upscale_method": "nearest-exact",
            "width": 128,
            "height": 128,
            "crop": "disabled",
        },
        "_meta": {"title": "Scale"},
    },
    "4": {
        "class_type": "SaveImage",
        "inputs": {"images": ["3", 0], "filename_prefix": "t"},
        "_meta": {"title": "Save"},
    },
}

CONTRACT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "width": {
            "type": "integer",
            "minimum": 1,
            "maximum": 2048,
            "default": 64,
            "x-bind": {"node": "Canvas", "input": "width"},
        },
        "color": {
            "type": "integer",
            "minimum": 0,
            "maximum": 16777215,
            "default": 0,
            "x-bind": {"node": "1", "input": "color"},
        },
    },
}

Writer = Callable[..., Path]


def graph() -> dict[str, Any]:
    return copy.deepcopy(GRAPH)


def contract(**properties: Any) -> dict[str, Any]:
    """The base contract with ``properties`` added (None removes one)."""
    result = copy.deepcopy(CONTRACT)
    for name, schema in properties.items():
        if schema is None:
            result["properties"].pop(name, None)
        else:
            result["properties"][name] = schema
    return result


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """Write a workflow folder; ``graph``/``contract`` may be a value or raw text."""

    def write(
        name: str = "wf",
        *,
        graph: Any = None,
        contract: Any = None,
        root: Path | None = None,
    ) -> Path:
        folder = (root or tmp_path) / name
        folder.mkdir(parents=True, exist_ok=True)
        for file, value in (
            ("workflow.api.json", GRAPH if graph is None else graph),
            ("contract.json", CONTRACT if contract is None else contract),
        ):
            text = value if isinstance(value, str) else json.dumps(value)
            (folder / file).write_text(text, "utf-8")
        return folder

    return write


@pytest.fixture
def load(write: Writer) -> Callable[..., Workflow]:
    def load(**kwargs: Any) -> Workflow:
        return load_workflow(write(**kwargs))

    return load


@pytest.fixture(scope="session")
def object_info() -> dict[str, Any]:
    return recordings.object_info()
