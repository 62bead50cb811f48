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
    """

    data_dir: Path
    step_ms: float = 50.0
    fail_rate: float = 0.0
    crash_after_steps: int | None = None
    seed: int | None = None
    """Seeds the random numbers behind ``fail_rate`` (and PreviewImage's temp names)."""
    overhead_ms: float = 1.0
    """Per-prompt time spent outside the nodes. The simulator's own bookkeeping is cheaper
    than ComfyUI's (torch inference mode, model GC, its executor thread), and a backend
    that answers faster than the real one would flatter the gateway in benchmarks."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must lie in 0..1")
        if self.step_ms < 0 or self.overhead_ms < 0:
            raise ValueError("step_ms and overhead_ms must not be negative")
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
