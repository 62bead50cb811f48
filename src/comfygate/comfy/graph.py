"""Pure helpers over API-format graphs."""

from __future__ import annotations

import copy
from typing import Any


def set_input(graph: dict[str, Any], node_id: str, name: str, value: Any) -> dict[str, Any]:
    out = dict(graph)
    node = copy.deepcopy(out[node_id])
    node.setdefault("inputs", {})[name] = value
    out[node_id] = node
    return out


def set_output_prefix(graph: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Every node with a ``filename_prefix`` writes under ``prefix/``: ComfyUI's cache is
    global, so a fresh folder per attempt makes every attempt save its own files."""
    out = dict(graph)
    for node_id, node in graph.items():
        inputs = node.get("inputs") or {}
        if isinstance(inputs.get("filename_prefix"), str):
            base = inputs["filename_prefix"].rsplit("/", 1)[-1] or "out"
            out = set_input(out, node_id, "filename_prefix", f"{prefix}/{node_id}/{base}")
    return out
