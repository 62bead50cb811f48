"""The simulator's knobs, fixed for the life of one server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SimConfig:
    """How a simulated ComfyUI behaves.

    ``data_dir`` holds ``input/``, ``output/`` and ``temp/`` like a ComfyUI install does;
    ``temp/`` is wiped at every start. ``crash_after_steps`` ends the whole process with
    ``os._exit`` (so only use it when the simulator runs in a process of its own).

    Chaos knobs, each a probability in 0..1 (0 turns it off):

    * ``fail_rate``: per prompt, one runnable node raises a plain ``RuntimeError``.
    * ``stall_rate``: per prompt, the prompt hangs partway: as a runnable node starts (right
      after its ``executing``), or for a KSampler after the progress of its middle step. It
      sends nothing more and stays ``running`` in ``/queue`` until ``POST /interrupt``
      (global, or naming its prompt id), then ends like any interrupted prompt
      (``execution_interrupted``, history ``status_str: error``). The server keeps answering.
    * ``ws_drop_rate``: while a prompt runs, each WebSocket message for its client is,
      with this probability, not delivered: that client's socket is cut instead (the TCP
      connection is aborted, no close frame). The prompt runs on and lands in ``/history``;
      the client reconnects with the same ``clientId`` and reads ``/history`` and ``/queue``.
    * ``oom_rate``: per prompt, a node (the KSampler if there is one, else a runnable node)
      fails as it starts like a CUDA out-of-memory under torch 2.5+: ``execution_error``
      with ``exception_type`` ``torch.OutOfMemoryError`` and ``exception_message`` the
      allocator's text, a newline and ComfyUI's OOM tips (``executor.OOM_MESSAGE`` and
      ``OOM_TIPS``); history as for any node error. ``POST /free`` works and is logged.

    All of them, like PreviewImage's temp names, draw from one ``random.Random(seed)``, so a
    seed and the same requests reproduce a run.
    """

    data_dir: Path
    step_ms: float = 50.0
    fail_rate: float = 0.0
    crash_after_steps: int | None = None
    seed: int | None = None
    """Seeds the random numbers behind the chaos knobs (and PreviewImage's temp names)."""
    overhead_ms: float = 1.0
    """Per-prompt time spent outside the nodes. The simulator's own bookkeeping is cheaper
    than ComfyUI's (torch inference mode, model GC, its executor thread), and a backend
    that answers faster than the real one would flatter the gateway in benchmarks."""
    stall_rate: float = 0.0
    ws_drop_rate: float = 0.0
    oom_rate: float = 0.0
    history_lag_ms: float = 0.0
    """ComfyUI sends ``execution_success`` from inside its executor and writes ``/history``
    only afterwards (``task_done``), then sends ``executing`` with ``node: null``: a client
    that asks at once may find ``{}``. With a lag the simulator hands the success to the
    sockets, waits this long, and only then writes the history entry."""

    def __post_init__(self) -> None:
        for name in ("fail_rate", "stall_rate", "ws_drop_rate", "oom_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in 0..1")
        if self.step_ms < 0 or self.overhead_ms < 0 or self.history_lag_ms < 0:
            raise ValueError("step_ms, overhead_ms and history_lag_ms must not be negative")
        if self.crash_after_steps is not None and self.crash_after_steps < 1:
            raise ValueError("crash_after_steps must be at least 1")

    @property
    def input_dir(self) -> Path:
        return self.data_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.data_dir / "output"

    @property
    def temp_dir(self) -> Path:
        return self.data_dir / "temp"
