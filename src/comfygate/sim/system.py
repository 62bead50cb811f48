"""``/system_stats``: the shape of a CPU-only ComfyUI 0.3.64, with this machine's RAM."""

from __future__ import annotations

import os
import sys
from typing import Any

COMFYUI_VERSION = "0.3.64"
FRONTEND_VERSION = "1.27.10"
TEMPLATES_VERSION = "0.1.95"
PYTORCH_VERSION = "2.14.1+cu130"  # what the recorded server ran; the simulator has no torch


def memory() -> tuple[int, int]:
    """(total, available) bytes from /proc/meminfo, or (0, 0) where there is none."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    fields[name] = int(parts[0]) * 1024
    except OSError:
        return 0, 0
    total = fields.get("MemTotal", 0)
    return total, fields.get("MemAvailable", fields.get("MemFree", 0))


def system_stats() -> dict[str, Any]:
    total, free = memory()
    return {
        "system": {
            "os": os.name,
            "ram_total": total,
            "ram_free": free,
            "comfyui_version": COMFYUI_VERSION,
            "required_frontend_version": FRONTEND_VERSION,
            "installed_templates_version": TEMPLATES_VERSION,
            "required_templates_version": TEMPLATES_VERSION,
            "python_version": sys.version,
            "pytorch_version": PYTORCH_VERSION,
            "embedded_python": False,
            "argv": sys.argv,
        },
        "devices": [
            {
                "name": "cpu",
                "type": "cpu",
                "index": None,
                "vram_total": total,
                "vram_free": free,
                "torch_vram_total": total,
                "torch_vram_free": free,
            }
        ],
    }
