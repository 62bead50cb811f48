"""Runs one prompt and says so over the WebSocket, event for event like ComfyUI 0.3.64.

Per node: ``progress_state`` (running), ``executing``, the node's own ``progress`` ticks
and frames, ``executed`` if it has UI output, ``progress_state`` (finished). A cached
output node only replays ``executed`` and a finished ``progress_state``. Interrupts are
cooperative: checked as a node starts and at every progress tick.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import UnidentifiedImageError

from comfygate.clock import Clock
from comfygate.sim import hub as frames
from comfygate.sim.cache import NodeCache, load_image_fingerprint
from comfygate.sim.graph import DependencyCycleError, ExecutionList
from comfygate.sim.hub import Hub
from comfygate.sim.images import describe
from comfygate.sim.nodes import NODES, NodeContext, Preview
from comfygate.sim.specs import NodeSpecs
from comfygate.sim.tracebacks import PIL_OPEN, execution_frames
from comfygate.sim.validation import full_type_name, is_link


class Interrupted(Exception):
    """ComfyUI's InterruptProcessingException."""


@dataclass(frozen=True)
class Outcome:
    success: bool
    messages: list[tuple[str, dict[str, Any]]]
    outputs: dict[str, Any]
    meta: dict[str, Any]


@dataclass(frozen=True)
class Knobs:
    root: str
    step_ms: float
    fail_rate: float
    crash_after_steps: int | None
    overhead_ms: float = 0.0


class PromptExecutor:
    def __init__(
        self,
        *,
        specs: NodeSpecs,
        hub: Hub,
        clock: Clock,
        knobs: Knobs,
        rng: random.Random,
        on_crash: Callable[[], None],
    ) -> None:
        self.specs = specs
        self.hub = hub
        self.clock = clock
        self.knobs = knobs
        self.rng = rng
        self.cache = NodeCache()
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.interrupted = False
        self.steps_done = 0
        self._on_crash = on_crash
        self._messages: list[tuple[str, dict[str, Any]]] = []
        self._progress: dict[str, dict[str, Any]] = {}

    def interrupt(self) -> None:
        self.interrupted = True

    def _timestamp(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    def _add_message(self, event: str, data: dict[str, Any], *, broadcast: bool) -> None:
        data = {**data, "timestamp": self._timestamp()}
        self._messages.append((event, data))
        if self.client_id is not None or broadcast:
            self.hub.emit(event, data, self.client_id)

    def _send(self, event: str, data: dict[str, Any]) -> None:
        if self.client_id is not None:
            self.hub.emit(event, data, self.client_id)

    def _progress_state(self, prompt_id: str) -> None:
        nodes = {
            node_id: {
                "value": state["value"],
                "max": state["max"],
                "state": state["state"],
                "node_id": node_id,
                "prompt_id": prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, state in self._progress.items()
        }
        self.hub.emit("progress_state", {"prompt_id": prompt_id, "nodes": nodes}, self.client_id)

    def _start(self, prompt_id: str, node_id: str) -> None:
        self._progress[node_id] = {"state": "running", "value": 0.0, "max": 1.0}
        self._progress_state(prompt_id)

    def _finish(self, prompt_id: str, node_id: str) -> None:
        state = self._progress.setdefault(node_id, {"value": 0, "max": 1})
        state["state"] = "finished"
        state["value"] = state["max"]
        self._progress_state(prompt_id)

    async def execute(
        self,
        prompt: dict[str, Any],
        prompt_id: str,
        extra_data: dict[str, Any],
        outputs: list[str],
    ) -> Outcome:
        self.interrupted = False
        self.client_id = extra_data.get("client_id")
        self._messages = []
        self._progress = {}
        self._add_message("execution_start", {"prompt_id": prompt_id}, broadcast=False)

        if self.knobs.overhead_ms > 0:
            # Where ComfyUI keys its caches and collects model garbage.
            await asyncio.sleep(self.knobs.overhead_ms / 1000)
        input_dir = os.path.join(self.knobs.root, "input")
        self.cache.set_prompt(
            prompt,
            self.specs,
            lambda _, node: load_image_fingerprint(input_dir, node["inputs"].get("image")),
        )
        cached = [n for n in prompt if self.cache.outputs(n) is not None]
        self._add_message(
            "execution_cached", {"nodes": cached, "prompt_id": prompt_id}, broadcast=False
        )

        order = ExecutionList(
            prompt, self.specs.is_output, lambda n: self.cache.outputs(n) is not None
        )
        for node_id in outputs:
            order.add_node(node_id)
        doomed = self._pick_failure(prompt, outputs)
        executed: list[str] = []
        success = True
        while not order.is_empty():
            try:
                node_id = order.stage()
            except DependencyCycleError as ex:
                self._fail(prompt, prompt_id, executed, next(iter(prompt)), ex, {}, [])
                success = False
                break
            ok = await self._run_node(prompt, prompt_id, extra_data, node_id, executed, doomed)
            if not ok:
                success = False
                break
            order.complete(node_id)
        else:
            self._add_message("execution_success", {"prompt_id": prompt_id}, broadcast=False)

        ui_outputs: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        for node_id in self.cache.node_ids():
            ui = self.cache.ui(node_id)
            if ui is not None:
                ui_outputs[node_id] = ui["output"]
                meta[node_id] = ui["meta"]
        self.last_node_id = None
        return Outcome(success, self._messages, ui_outputs, meta)

    def _pick_failure(self, prompt: dict[str, Any], outputs: list[str]) -> str | None:
        if self.knobs.fail_rate <= 0 or self.rng.random() >= self.knobs.fail_rate:
            return None
        dry = ExecutionList(
            prompt, self.specs.is_output, lambda n: self.cache.outputs(n) is not None
        )
        for node_id in outputs:
            dry.add_node(node_id)
        runnable = []
        while not dry.is_empty():
            node_id = dry.stage()
            if self.cache.outputs(node_id) is None:
                runnable.append(node_id)
            dry.complete(node_id)
        return self.rng.choice(runnable) if runnable else None

    async def _run_node(
        self,
        prompt: dict[str, Any],
        prompt_id: str,
        extra_data: dict[str, Any],
        node_id: str,
        executed: list[str],
        doomed: str | None,
    ) -> bool:
        node = prompt[node_id]
        class_type: str = node["class_type"]
        if self.cache.outputs(node_id) is not None:
            cached_ui = self.cache.ui(node_id) or {}
            self._send(
                "executed",
                {
                    "node": node_id,
                    "display_node": node_id,
                    "output": cached_ui.get("output"),
                    "prompt_id": prompt_id,
                },
            )
            self._finish(prompt_id, node_id)
            return True

        self._start(prompt_id, node_id)
        inputs, shown = self._gather(prompt, node_id, extra_data)
        if self.client_id is not None:
            self.last_node_id = node_id
            self._send(
                "executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}
            )
        try:
            if self.interrupted:
                raise Interrupted
            if node_id == doomed:
                # Reported as a plain RuntimeError, the commonest type a real node raises.
                raise RuntimeError("simulated failure (comfygate sim fail_rate)")
            ctx = self._context(prompt, prompt_id, extra_data, node_id)
            outputs, ui = await NODES[class_type](ctx, inputs)
        except Interrupted:
            self._add_message(
                "execution_interrupted",
                {
                    "prompt_id": prompt_id,
                    "node_id": node_id,
                    "node_type": class_type,
                    "executed": list(executed),
                },
                broadcast=True,
            )
            return False
        except Exception as ex:
            self._fail(
                prompt, prompt_id, executed, node_id, ex, shown, self._frames(class_type, ex)
            )
            return False
        if ui:
            self.cache.set_ui(
                node_id,
                {
                    "meta": {
                        "node_id": node_id,
                        "display_node": node_id,
                        "parent_node": None,
                        "real_node_id": node_id,
                    },
                    "output": ui,
                },
            )
            self._send(
                "executed",
                {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": prompt_id},
            )
        self.cache.set_outputs(node_id, outputs)
        self._finish(prompt_id, node_id)
        executed.append(node_id)
        return True

    def _frames(self, class_type: str, ex: Exception) -> list[str]:
        extra = PIL_OPEN if isinstance(ex, UnidentifiedImageError) else ()
        return execution_frames(self.knobs.root, class_type, extra)

    def _fail(
        self,
        prompt: dict[str, Any],
        prompt_id: str,
        executed: list[str],
        node_id: str,
        ex: Exception,
        shown: dict[str, list[Any]],
        traceback: list[str],
    ) -> None:
        self._add_message(
            "execution_error",
            {
                "prompt_id": prompt_id,
                "node_id": node_id,
                "node_type": prompt[node_id]["class_type"],
                "executed": list(executed),
                "exception_message": f"{ex}\n",
                "exception_type": full_type_name(ex),
                "traceback": traceback,
                "current_inputs": shown,
                "current_outputs": self.cache.node_ids(),
            },
            broadcast=False,
        )

    def _gather(
        self, prompt: dict[str, Any], node_id: str, extra_data: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        """The node's arguments, and how ComfyUI would print them in an error."""
        node = prompt[node_id]
        class_inputs = self.specs.input_types(node["class_type"])
        declared = {**class_inputs.get("required", {}), **class_inputs.get("optional", {})}
        inputs: dict[str, Any] = {}
        shown: dict[str, list[Any]] = {}
        for name, value in node["inputs"].items():
            if name not in declared:
                continue
            if is_link(value):
                upstream = self.cache.outputs(value[0])
                value = None if upstream is None else upstream[int(value[1])]
            inputs[name] = value
            shown[name] = [_format_value(value)]
        for name, kind in class_inputs.get("hidden", {}).items():
            if kind == "PROMPT":
                shown[name] = [str(prompt)]
            elif kind == "EXTRA_PNGINFO":
                shown[name] = [_format_value(extra_data.get("extra_pnginfo"))]
            elif kind == "UNIQUE_ID":
                shown[name] = [node_id]
        return inputs, shown

    def _context(
        self, prompt: dict[str, Any], prompt_id: str, extra_data: dict[str, Any], node_id: str
    ) -> NodeContext:
        client_id = self.client_id

        async def progress(value: int, total: int, preview: Preview | None) -> None:
            await self._tick(prompt_id, node_id, value, total, preview, client_id)

        def send_text(text: str) -> None:
            # GetImageSize passes no client id: the real server broadcasts this frame.
            self.hub.emit(frames.TEXT, frames.text_frame(node_id, text), None)

        return NodeContext(
            node_id=node_id,
            prompt=prompt,
            extra_data=extra_data,
            root=self.knobs.root,
            now=self.clock.now(),
            rng=self.rng,
            step_ms=self.knobs.step_ms,
            progress=progress,
            send_text=send_text,
        )

    async def _tick(
        self,
        prompt_id: str,
        node_id: str,
        value: int,
        total: int,
        preview: Preview | None,
        client_id: str | None,
    ) -> None:
        """ComfyUI's progress hook: interrupt check, progress_state, frame, progress."""
        if self.interrupted:
            raise Interrupted
        self._progress[node_id] = {"state": "running", "value": value, "max": total}
        self._progress_state(prompt_id)
        metadata = self.hub.supports_preview_metadata(client_id)
        if preview is not None and metadata:
            info = {
                "node_id": node_id,
                "prompt_id": prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            body = frames.preview_frame_with_metadata(preview.jpeg, info)
            self.hub.emit(frames.PREVIEW_IMAGE_WITH_METADATA, body, client_id)
        self.hub.emit(
            "progress",
            {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id},
            client_id,
        )
        if preview is not None and not metadata:
            self.hub.emit(frames.PREVIEW_IMAGE, frames.preview_frame(preview.jpeg), client_id)
        self.steps_done += 1
        limit = self.knobs.crash_after_steps
        if limit is not None and self.steps_done >= limit:
            with_timeout = asyncio.wait_for(self.hub.drain(), timeout=1.0)
            try:
                await with_timeout
            finally:
                self._on_crash()


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, int | float | bool | str):
        return value
    return describe(value)
