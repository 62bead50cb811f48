"""Node class specs, exactly as the real ``/object_info`` reports them.

``object_info.json`` beside this module is copied verbatim from a real ComfyUI 0.3.64 for
the classes the simulator implements. Two lists are filled at request time, as ComfyUI
does from disk: LoadImage's ``image`` (the input folder) and CheckpointLoaderSimple's
``ckpt_name`` (the simulator's fake checkpoints).
"""

from __future__ import annotations

import json
import mimetypes
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

CHECKPOINTS = (
    "sim-sd15.safetensors",
    "sim-sdxl.safetensors",
    "v1-5-pruned-emaonly.safetensors",
)
"""Fake checkpoints; the last one lets ComfyUI's default workflow run unchanged."""

ANY_TYPE = "*"


@cache
def _static_info() -> dict[str, dict[str, Any]]:
    text = resources.files(__package__).joinpath("object_info.json").read_text("utf-8")
    data: dict[str, dict[str, Any]] = json.loads(text)
    return data


def image_files(input_dir: Path) -> list[str]:
    """Top-level image files of the input folder, sorted, as LoadImage lists them."""
    try:
        entries = list(input_dir.iterdir())
    except FileNotFoundError:
        return []
    names = []
    for entry in entries:
        if not entry.is_file():
            continue
        mime, _ = mimetypes.guess_type(entry.name, strict=False)
        if mime is not None and mime.split("/")[0] == "image":
            names.append(entry.name)
    return sorted(names)


class NodeSpecs:
    """The implemented classes' specs, with the file-backed lists read from disk on demand."""

    def __init__(self, input_dir: Path) -> None:
        self._input_dir = input_dir
        self._static = _static_info()

    def __contains__(self, class_type: object) -> bool:
        return isinstance(class_type, str) and class_type in self._static

    def names(self) -> list[str]:
        return list(self._static)

    def info(self, class_type: str) -> dict[str, Any]:
        """One ``/object_info`` entry; callers must not mutate what they get."""
        static = self._static[class_type]
        if class_type == "LoadImage":
            return _with_choices(static, "image", image_files(self._input_dir))
        if class_type == "CheckpointLoaderSimple":
            return _with_choices(static, "ckpt_name", list(CHECKPOINTS))
        return static

    def object_info(self) -> dict[str, dict[str, Any]]:
        return {name: self.info(name) for name in self._static}

    def input_types(self, class_type: str) -> dict[str, dict[str, Any]]:
        inputs: dict[str, dict[str, Any]] = self.info(class_type)["input"]
        return inputs

    def return_types(self, class_type: str) -> list[str]:
        out: list[str] = self._static[class_type]["output"]
        return out

    def is_output(self, class_type: str) -> bool:
        return bool(self._static[class_type]["output_node"])

    def has_hidden_unique_id(self, class_type: str) -> bool:
        hidden = self._static[class_type]["input"].get("hidden", {})
        return "UNIQUE_ID" in hidden.values()


def _with_choices(static: dict[str, Any], input_name: str, choices: list[str]) -> dict[str, Any]:
    spec = static["input"]["required"][input_name]
    patched_spec = [choices, *spec[1:]]
    required = {**static["input"]["required"], input_name: patched_spec}
    return {**static, "input": {**static["input"], "required": required}}


def input_info(
    inputs: dict[str, dict[str, Any]], name: str
) -> tuple[Any, str | None, dict[str, Any]]:
    """``(type, category, options)`` of one input, like ComfyUI's ``get_input_info``."""
    for category in ("required", "optional", "hidden"):
        group = inputs.get(category)
        if group is not None and name in group:
            spec = group[name]
            if category == "hidden":
                return spec, category, {}
            options = spec[1] if len(spec) > 1 else {}
            return spec[0], category, options
    return None, None, {}
