"""What a real ComfyUI 0.3.64 answered, kept in the repository (tests/data/comfyui/).

Every test that compares against the real server reads it from here, so the same
tests run, and decide the same way, in any clone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COMFYUI = Path(__file__).parent / "data" / "comfyui"


def sample(name: str) -> Any:
    """A capture in samples/, or one key of it with ``file.json#key``."""
    file, _, key = name.partition("#")
    data = json.loads((COMFYUI / "samples" / file).read_text("utf-8"))
    return data[key] if key else data


def object_info() -> dict[str, Any]:
    """The whole ``GET /object_info`` answer: 478 node classes, no model weights."""
    data: dict[str, Any] = json.loads((COMFYUI / "object_info.json").read_text("utf-8"))
    return data
