"""The captures of a real ComfyUI 0.3.64 (tests/data/comfyui/samples/), as frames.

JSON frames are stored whole. Binary frames are stored as ``event_type``,
``total_len`` and the first bytes (``head_hex``), plus the decoded ``metadata`` of
type-4 frames; :func:`frame_bytes` rebuilds a frame of the recorded length whose
header bytes are the recorded ones.
"""

from __future__ import annotations

import json
from typing import Any

from tests.recordings import sample

WS_SAMPLES = (
    "ws_basic_run.json",
    "ws_cached_rerun.json",
    "ws_load_scale_save.json",
    "ws_prefix_change_rerun.json",
    "ws_text_frame.json",
    "ws_upscale_progress.json",
    "ws_binary_frames.json#no_feature_flags",
    "ws_binary_frames.json#feature_flags_preview_metadata",
    "errors_and_clients.json#runtime_error_ws",
    "errors_and_clients.json#reconnect_same_clientid_msgs",
    "queue_interrupt.json#ws_after_interrupt_running_target",
)


def history_sample(name: str) -> tuple[str, dict[str, Any]]:
    """(prompt_id, entry) of a history capture, with or without its id wrapper."""
    data = sample(name)
    if "prompt" in data:
        return str(data["prompt"][1]), data
    ((prompt_id, entry),) = data.items()
    return prompt_id, entry


def frame_bytes(recorded: dict[str, Any]) -> str | bytes:
    """One recorded WebSocket frame as it went over the wire."""
    if recorded["kind"] == "json":
        return json.dumps(recorded["msg"])
    msg = recorded["msg"]
    head = bytes.fromhex(msg["head_hex"])
    if msg["event_type"] == 4:
        meta = json.dumps(msg["metadata"]).encode()
        assert int.from_bytes(head[4:8], "big") == len(meta)
        head = head[:8] + meta + bytes.fromhex(msg["image_magic"])
    assert len(head) <= msg["total_len"]
    return head + bytes(msg["total_len"] - len(head))


def frames(name: str) -> list[str | bytes]:
    return [frame_bytes(recorded) for recorded in sample(name)]
