"""Pure helpers over API-format graphs (``{node_id: {class_type, inputs, _meta}}``).

Every helper returns a new graph and leaves its argument untouched: the graph a
job stores is the one it ran, and one template feeds many jobs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

#: output nodes of stock ComfyUI, for when no /object_info is at hand (taken from the
#: ``output_node: true`` classes of a real 0.3.64 /object_info, plus the audio savers)
KNOWN_OUTPUT_NODES = frozenset(
    {
        "CLIPSave",
        "CheckpointSave",
        "ImageOnlyCheckpointSave",
        "LoraSave",
        "LossGraphNode",
        "MaskPreview",
        "ModelSave",
        "Preview3D",
        "Preview3DAnimation",
        "PreviewAny",
        "PreviewAudio",
        "PreviewImage",
        "SaveAnimatedPNG",
        "SaveAnimatedWEBP",
        "SaveAudio",
        "SaveAudioMP3",
        "SaveAudioOpus",
        "SaveGLB",
        "SaveImage",
        "SaveImageWebsocket",
        "SaveLatent",
        "SaveLoRANode",
        "SaveSVGNode",
        "SaveVideo",
        "SaveWEBM",
        "VAESave",
    }
)


def set_input(graph: Mapping[str, Any], node_id: str, name: str, value: Any) -> dict[str, Any]:
    """A copy of ``graph`` with one input of one node set (KeyError if the node is absent)."""
    out = dict(graph)
    node = copy.deepcopy(out[node_id])
    inputs = node.get("inputs")
    if not isinstance(inputs, dict):
        inputs = node["inputs"] = {}
    inputs[name] = value
    out[node_id] = node
    return out


def set_output_prefix(graph: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """A copy where every node with a literal ``filename_prefix`` writes under
    ``{prefix}/{node_id}/``, keeping the last segment of its own prefix as the file stem.

    ComfyUI's execution cache is global: an identical graph re-run by anyone
    replays the old ``executed`` output and writes no file, pointing at a file the
    gateway may already have moved. A fresh folder per attempt changes the save
    nodes' inputs, so they re-run and write new files (upstream nodes stay cached).
    A ``filename_prefix`` fed by a link is left alone.
    """
    parts = prefix.strip("/").split("/")
    if not prefix.strip("/") or any(p in ("", ".", "..") for p in parts) or "\\" in prefix:
        raise ValueError(f"output prefix must be a relative path without '..': {prefix!r}")
    base_prefix = "/".join(parts)
    out = dict(graph)
    for node_id, node in graph.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if not isinstance(inputs, Mapping):
            continue
        current = inputs.get("filename_prefix")
        if isinstance(current, str):
            stem = current.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or "ComfyUI"
            out = set_input(out, node_id, "filename_prefix", f"{base_prefix}/{node_id}/{stem}")
    return out


def output_nodes(
    graph: Mapping[str, Any], object_info: Mapping[str, Any] | None = None
) -> tuple[str, ...]:
    """Ids of the nodes ComfyUI runs the graph for, in node-id order.

    With ``object_info`` its ``output_node`` flags decide; without, a node is an output
    if its class is a stock output node or it takes a ``filename_prefix``.
    """
    found: list[str] = []
    for node_id, node in graph.items():
        if not isinstance(node, Mapping):
            continue
        class_type = node.get("class_type")
        if object_info is not None:
            info = object_info.get(class_type) if isinstance(class_type, str) else None
            is_output = isinstance(info, Mapping) and bool(info.get("output_node"))
        else:
            inputs = node.get("inputs")
            is_output = class_type in KNOWN_OUTPUT_NODES or (
                isinstance(inputs, Mapping) and "filename_prefix" in inputs
            )
        if is_output:
            found.append(str(node_id))
    return tuple(sorted(found, key=_node_order))


def _node_order(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)
