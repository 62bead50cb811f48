"""The order nodes run in: ComfyUI's ``ExecutionList``, a topological dissolve that starts
from the output nodes, skips whatever is cached, and prefers output nodes (then the nodes
that feed them) whenever several are ready."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from comfygate.sim.validation import is_link


class DependencyCycleError(Exception):
    pass


class ExecutionList:
    def __init__(
        self,
        prompt: dict[str, Any],
        is_output: Callable[[str], bool],
        is_cached: Callable[[str], bool],
    ) -> None:
        self._prompt = prompt
        self._is_output = is_output
        self._is_cached = is_cached
        self._pending: dict[str, bool] = {}
        self._block_count: dict[str, int] = {}
        self._blocking: dict[str, dict[str, dict[int, bool]]] = {}

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, int, str]] = []
        while stack:
            unique_id = stack.pop()
            if unique_id in self._pending:
                continue
            self._pending[unique_id] = True
            self._block_count[unique_id] = 0
            self._blocking[unique_id] = {}
            inputs = self._prompt[unique_id]["inputs"]
            for name in inputs:
                value = inputs[name]
                if is_link(value) and not self._is_cached(value[0]):
                    stack.append(value[0])
                    links.append((value[0], value[1], unique_id))
        for from_id, socket, to_id in links:
            if not self._is_cached(from_id):
                self.add_node(from_id)
                if to_id not in self._blocking[from_id]:
                    self._blocking[from_id][to_id] = {}
                    self._block_count[to_id] += 1
                self._blocking[from_id][to_id][socket] = True

    def is_empty(self) -> bool:
        return not self._pending

    def stage(self) -> str:
        """The next node to run; raises DependencyCycleError if none can."""
        ready = [n for n in self._pending if self._block_count[n] == 0]
        if not ready:
            raise DependencyCycleError("Dependency cycle detected")
        for node_id in ready:
            if self._is_output(self._class(node_id)):
                return node_id
        for node_id in ready:
            if any(self._is_output(self._class(b)) for b in self._blocking[node_id]):
                return node_id
        for node_id in ready:
            for blocked in self._blocking[node_id]:
                if any(self._is_output(self._class(b)) for b in self._blocking[blocked]):
                    return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self._pending[node_id]
        for blocked in self._blocking[node_id]:
            self._block_count[blocked] -= 1
        del self._blocking[node_id]

    def _class(self, node_id: str) -> str:
        class_type: str = self._prompt[node_id]["class_type"]
        return class_type
