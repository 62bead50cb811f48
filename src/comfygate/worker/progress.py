"""Turns ComfyUI's execution messages into one progress value over nodes and steps."""

from __future__ import annotations

from typing import Any

from comfygate.comfy.messages import (
    Executing,
    ExecutionCached,
    Message,
    ProgressState,
)
from comfygate.comfy.messages import Progress as StepProgress
from comfygate.jobs.model import Progress


def node_title(graph: dict[str, Any], node_id: str) -> str:
    node = graph.get(node_id) or {}
    title = (node.get("_meta") or {}).get("title")
    return str(title or node.get("class_type") or node_id)


class ProgressTracker:
    def __init__(self, graph: dict[str, Any]) -> None:
        self._graph = graph
        self._total = max(1, len(graph))
        self._done: set[str] = set()
        self._current: str | None = None
        self._step: int | None = None
        self._steps: int | None = None

    def feed(self, message: Message) -> bool:
        """Take one message; True if the progress changed."""
        if isinstance(message, ExecutionCached):
            self._done.update(str(n) for n in message.nodes)
            return bool(message.nodes)
        if isinstance(message, ProgressState):
            changed = False
            for node_id, state in message.nodes.items():
                if state.state == "finished" and node_id not in self._done:
                    self._done.add(node_id)
                    changed = True
                elif state.state == "running" and node_id != self._current:
                    self._set_current(node_id)
                    changed = True
            return changed
        if isinstance(message, Executing):
            if message.node is not None and message.node != self._current:
                self._set_current(str(message.node))
                return True
            return False
        if isinstance(message, StepProgress):
            if message.node is not None and str(message.node) != self._current:
                self._set_current(str(message.node))
            self._step, self._steps = int(message.value), int(message.max)
            return True
        return False

    def _set_current(self, node_id: str) -> None:
        self._current = node_id
        self._step = self._steps = None

    def finish(self) -> Progress:
        self._done.update(self._graph)
        self._current = None
        self._step = self._steps = None
        return self.snapshot()

    def snapshot(self) -> Progress:
        done = len(self._done & set(self._graph)) if self._graph else len(self._done)
        fraction = 0.0
        if self._current is not None and self._current not in self._done and self._steps:
            fraction = min(1.0, (self._step or 0) / self._steps)
        value = min(1.0, (done + fraction) / self._total)
        return Progress(
            value=round(value, 4),
            nodes_done=done,
            nodes_total=self._total,
            current_node=node_title(self._graph, self._current) if self._current else None,
            step=self._step,
            steps=self._steps,
        )
