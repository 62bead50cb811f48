from __future__ import annotations

import pytest

from comfygate.comfy.client import SystemStats
from comfygate.worker.hygiene import short_of_memory


def stats(ram_free: int, vram_free: int, *, total: int = 100) -> SystemStats:
    return SystemStats(
        vram_total=total,
        vram_free=vram_free,
        ram_total=total,
        ram_free=ram_free,
        comfyui_version="x",
        raw={},
    )


@pytest.mark.parametrize(
    ("ram", "vram", "short"),
    [(50, 50, False), (9, 50, True), (50, 9, True), (10, 10, False)],
)
def test_short_of_memory_when_ram_or_vram_runs_low(ram: int, vram: int, short: bool) -> None:
    assert short_of_memory(stats(ram, vram), 0.1) is short


def test_a_device_that_reports_no_total_never_counts_as_short() -> None:
    assert short_of_memory(stats(0, 0, total=0), 0.5) is False
