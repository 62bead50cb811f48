"""ComfyUI's "classic" execution cache: node outputs keyed by an input signature.

A node's signature is its class, its inputs and, recursively, its ancestors' signatures,
but not its id, so identical work is found again whichever client submits it and under
whichever node ids. As in the real server, each new prompt keeps only the entries its own
nodes can use, so the cache holds at most one prompt's worth of results.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from itertools import count
from typing import Any

from comfygate.sim.specs import NodeSpecs
from comfygate.sim.validation import is_link

_fresh = count()


def _uncacheable() -> str:
    # The real key holds a NaN, which equals nothing but itself: usable within the prompt,
    # never found by a later one.
    return f"!uncacheable:{next(_fresh)}"


def load_image_fingerprint(input_dir: str, image: Any) -> str | None:
    """LoadImage's ``IS_CHANGED``: the file's SHA-256, or ``None`` if it cannot be read."""
    if not isinstance(image, str):
        return None
    base = input_dir
    for tag, folder in (("[output]", "output"), ("[input]", "input"), ("[temp]", "temp")):
        if image.endswith(tag):
            image = image[: -(len(tag) + 1)]
            base = os.path.join(os.path.dirname(input_dir), folder)
            break
    try:
        with open(os.path.join(base, image), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


class NodeCache:
    """Outputs and UI results of executed nodes, for the prompt being run and the next."""

    def __init__(self) -> None:
        self._outputs: dict[str, tuple[Any, ...]] = {}
        self._ui: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, str] = {}

    def set_prompt(
        self,
        prompt: dict[str, Any],
        specs: NodeSpecs,
        fingerprint: Callable[[str, dict[str, Any]], str | None],
    ) -> None:
        """Key every node of ``prompt`` and drop entries no node of it can use."""
        keys: dict[str, str] = {}
        changed: dict[str, str | None] = {}
        for node_id in prompt:
            keys[node_id] = self._signature(prompt, node_id, specs, fingerprint, changed)
        self._keys = keys
        used = set(keys.values())
        self._outputs = {k: v for k, v in self._outputs.items() if k in used}
        self._ui = {k: v for k, v in self._ui.items() if k in used}

    def clear(self) -> None:
        self._outputs.clear()
        self._ui.clear()

    def node_ids(self) -> list[str]:
        return list(self._keys)

    def outputs(self, node_id: str) -> tuple[Any, ...] | None:
        key = self._keys.get(node_id)
        return None if key is None else self._outputs.get(key)

    def set_outputs(self, node_id: str, value: tuple[Any, ...]) -> None:
        self._outputs[self._keys[node_id]] = value

    def ui(self, node_id: str) -> dict[str, Any] | None:
        key = self._keys.get(node_id)
        return None if key is None else self._ui.get(key)

    def set_ui(self, node_id: str, value: dict[str, Any]) -> None:
        self._ui[self._keys[node_id]] = value

    @staticmethod
    def _signature(
        prompt: dict[str, Any],
        node_id: str,
        specs: NodeSpecs,
        fingerprint: Callable[[str, dict[str, Any]], str | None],
        changed: dict[str, str | None],
    ) -> str:
        ancestors: list[str] = []
        order: dict[str, int] = {}

        def walk(current: str) -> None:
            node = prompt.get(current)
            if node is None:
                return
            for key in sorted(node["inputs"]):
                value = node["inputs"][key]
                if is_link(value) and value[0] not in order:
                    ancestors.append(value[0])
                    order[value[0]] = len(ancestors) - 1
                    walk(value[0])

        walk(node_id)
        parts: list[Any] = []
        for current in (node_id, *ancestors):
            node = prompt.get(current)
            if node is None:
                return _uncacheable()
            class_type = node["class_type"]
            if current not in changed:
                changed[current] = fingerprint(current, node) if class_type == "LoadImage" else ""
            if changed[current] is None:
                return _uncacheable()
            immediate: list[Any] = [class_type, changed[current]]
            if specs.has_hidden_unique_id(class_type):
                immediate.append(current)
            for key in sorted(node["inputs"]):
                value = node["inputs"][key]
                if is_link(value):
                    immediate.append([key, ["ANCESTOR", order[value[0]], value[1]]])
                else:
                    immediate.append([key, value])
            parts.append(immediate)
        try:
            return json.dumps(parts, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            return _uncacheable()
