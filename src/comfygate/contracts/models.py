"""Which model files a graph needs, and which a ComfyUI has.

A model is named in a loader node's ``*_name`` input (``ckpt_name``, ``lora_name``,
``vae_name``, ``clip_name1`` …): a choice among the files of a models folder, which
``/object_info`` lists as that input's options. Both sides use the same rule, so a job
is leased only to a backend whose ComfyUI lists every model file its graph names."""

from __future__ import annotations

import re
from typing import Any

#: a loader's file choice; ``sampler_name`` and the like sit on non-loader nodes
_MODEL_INPUT = re.compile(r"_name\d*$")


def _is_loader(class_type: str) -> bool:
    return "Loader" in class_type


def models_needed(graph: dict[str, Any]) -> tuple[str, ...]:
    """The model files an API-format graph names, sorted."""
    names = set()
    for node in graph.values():
        if not isinstance(node, dict) or not _is_loader(str(node.get("class_type", ""))):
            continue
        for name, value in (node.get("inputs") or {}).items():
            if _MODEL_INPUT.search(name) and isinstance(value, str):
                names.add(value)
    return tuple(sorted(names))


def models_available(object_info: dict[str, Any]) -> frozenset[str]:
    """The model files a ComfyUI lists in its loaders' choices (both enum encodings)."""
    names: set[str] = set()
    for class_type, info in object_info.items():
        if not _is_loader(class_type) or not isinstance(info, dict):
            continue
        inputs = info.get("input") or {}
        for section in ("required", "optional"):
            for name, spec in (inputs.get(section) or {}).items():
                if _MODEL_INPUT.search(name) and isinstance(spec, list) and spec:
                    names.update(x for x in _choices(spec) if isinstance(x, str))
    return frozenset(names)


def _choices(spec: list[Any]) -> list[Any]:
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        options = spec[1].get("options")
        return options if isinstance(options, list) else []
    return []
