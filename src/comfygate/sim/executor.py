"""Runs one prompt and says so over the WebSocket, event for event like ComfyUI 0.3.64.

Per node: ``progress_state`` (running), ``executing``, the node's own ``progress`` ticks
and frames, ``executed`` if it has UI output, ``progress_state`` (finished). A cached
output node only replays ``executed`` and a finished ``progress_state``. Interrupts are
cooperative: checked as a node starts and at every progress tick.

The chaos knobs (see :class:`~comfygate.sim.config.SimConfig`) are drawn here, from the one
seeded ``rng``: per prompt the node that fails, the point where it stalls and the node that
runs out of memory; per message sent to the prompt's client, whether its socket is cut.
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


class OutOfMemoryError(RuntimeError):
    """Stands in for ``torch.OutOfMemoryError``, a RuntimeError subclass.

    Since torch 2.5 the class behind ``torch.cuda.OutOfMemoryError`` (ComfyUI's
    ``OOM_EXCEPTION`` in ``comfy/model_management.py``) is created in C++ under the name
    ``torch.OutOfMemoryError``, so ``full_type_name`` in ComfyUI's ``execution.py`` reports
    ``torch.OutOfMemoryError``; this class carries the same module and name.
    """

    __module__ = "torch"


OOM_MESSAGE = (
    # c10's CUDAMallocAsyncAllocator, the allocator ComfyUI turns on by default for CUDA
    # builds of torch 2 (cuda_malloc.py), on an 8 GiB card with no memory fraction set.
    "Allocation on device 0 would exceed allowed memory. (out of memory)"
    "\nCurrently allocated     : 7.12 GiB"
    "\nRequested               : 1.25 GiB"
    "\nDevice limit            : 8.00 GiB"
    "\nFree (according to CUDA): 590.00 MiB"
    "\nPyTorch limit (set by user-supplied memory fraction)"
    "\n                        : 17179869184.00 GiB"
)
"""What ``str()`` of the simulated out-of-memory error gives."""

OOM_TIPS = (
    "This error means you ran out of memory on your GPU.\n\n"
    "TIPS: If the workflow worked before you might have accidentally set the batch_size to "
    "a large number."
)
"""Appended by ComfyUI's ``execute`` to the message of an ``OOM_EXCEPTION``."""

SAMPLERS = frozenset({"KSampler"})
"""Node classes that step: a stall waits in their middle step, an OOM prefers them."""


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
    stall_rate: float = 0.0
    ws_drop_rate: float = 0.0
    oom_rate: float = 0.0


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
        self._wake = asyncio.Event()
        self._stall: str | None = None
        self._oom: str | None = None
        self._on_crash = on_crash
        self._messages: list[tuple[str, dict[str, Any]]] = []
        self._progress: dict[str, dict[str, Any]] = {}

    def interrupt(self) -> None:
        self.interrupted = True
        self._wake.set()

    def _emit(self, event: str | int, data: Any, sid: str | None) -> None:
        """Send one message of the run; ``ws_drop_rate`` may cut the client's socket instead."""
        cut = None
        rate = self.knobs.ws_drop_rate
        client_id = self.client_id
        if rate > 0 and client_id is not None and self.rng.random() < rate:
            cut = client_id
        self.hub.emit(event, data, sid, cut=cut)

    def finished(self, prompt_id: str) -> None:
        """The closing ``executing`` with ``node: None``, sent once history has the prompt."""
        if self.client_id is not None:
            self._emit("executing", {"node": None, "prompt_id": prompt_id}, self.client_id)

    def _timestamp(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    def _add_message(self, event: str, data: dict[str, Any], *, broadcast: bool) -> None:
        data = {**data, "timestamp": self._timestamp()}
        self._messages.append((event, data))
        if self.client_id is not None or broadcast:
            self._emit(event, data, self.client_id)

    def _send(self, event: str, data: dict[str, Any]) -> None:
        if self.client_id is not None:
            self._emit(event, data, self.client_id)

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
        self._emit("progress_state", {"prompt_id": prompt_id, "nodes": nodes}, self.client_id)

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
        self._wake.clear()
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
        knobs = self.knobs
        chaos = max(knobs.fail_rate, knobs.stall_rate, knobs.oom_rate) > 0
        runnable = self._runnable(prompt, outputs) if chaos else []
        doomed = self._pick(self.knobs.fail_rate, runnable)
        self._stall = self._pick(self.knobs.stall_rate, runnable)
        samplers = [n for n in runnable if prompt[n]["class_type"] in SAMPLERS]
        self._oom = self._pick(self.knobs.oom_rate, samplers or runnable)
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

    def _pick(self, rate: float, candidates: list[str]) -> str | None:
        """With probability ``rate``, one of ``candidates`` (a draw only if ``rate`` > 0)."""
        if rate <= 0 or self.rng.random() >= rate:
            return None
        return self.rng.choice(candidates) if candidates else None

    def _runnable(self, prompt: dict[str, Any], outputs: list[str]) -> list[str]:
        """The nodes this prompt will run (not the cached ones), in execution order."""
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
        return runnable

    async def _hang(self) -> None:
        """A stall: silent, no progress, until an interrupt ends it like any interrupt."""
        await self._wake.wait()
        raise Interrupted

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
            if node_id == self._stall and class_type not in SAMPLERS:
                await self._hang()
            if node_id == doomed:
                # Reported as a plain RuntimeError, the commonest type a real node raises.
                raise RuntimeError("simulated failure (comfygate sim fail_rate)")
            if node_id == self._oom:
                raise OutOfMemoryError(OOM_MESSAGE)
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
        # ComfyUI appends its tips to an OOM's text; any other error gets an empty line.
        tips = OOM_TIPS if isinstance(ex, OutOfMemoryError) else ""
        self._add_message(
            "execution_error",
            {
                "prompt_id": prompt_id,
                "node_id": node_id,
                "node_type": prompt[node_id]["class_type"],
                "executed": list(executed),
                "exception_message": f"{ex}\n{tips}",
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
            self._emit(frames.TEXT, frames.text_frame(node_id, text), None)

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
            self._emit(frames.PREVIEW_IMAGE_WITH_METADATA, body, client_id)
        self._emit(
            "progress",
            {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id},
            client_id,
        )
        if preview is not None and not metadata:
            self._emit(frames.PREVIEW_IMAGE, frames.preview_frame(preview.jpeg), client_id)
        self.steps_done += 1
        limit = self.knobs.crash_after_steps
        if limit is not None and self.steps_done >= limit:
            with_timeout = asyncio.wait_for(self.hub.drain(), timeout=1.0)
            try:
                await with_timeout
            finally:
                self._on_crash()
        if node_id == self._stall and value == max(1, total // 2):
            await self._hang()


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, int | float | bool | str):
        return value
    return describe(value)
