"""parse_message over every recorded frame of a real ComfyUI, and over frames it never sent."""

from __future__ import annotations

import json
import struct

import pytest

from comfygate.comfy.messages import (
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    NodeProgress,
    Preview,
    Progress,
    ProgressState,
    Status,
    Text,
    Unknown,
    parse_message,
)
from tests.recordings import sample
from tests.unit.comfy.recorded import WS_SAMPLES, frame_bytes, frames

TYPES = {
    "status": Status,
    "execution_start": ExecutionStart,
    "execution_cached": ExecutionCached,
    "executing": Executing,
    "progress": Progress,
    "progress_state": ProgressState,
    "executed": Executed,
    "execution_success": ExecutionSuccess,
    "execution_error": ExecutionError,
    "execution_interrupted": ExecutionInterrupted,
}
BINARY_TYPES = {1: Preview, 3: Text, 4: Preview}


@pytest.mark.parametrize("name", WS_SAMPLES)
def test_every_recorded_frame_parses_to_its_type(name: str) -> None:
    for recorded in sample(name):
        message = parse_message(frame_bytes(recorded))
        if recorded["kind"] == "binary":
            assert isinstance(message, BINARY_TYPES[recorded["msg"]["event_type"]])
            continue
        kind = recorded["msg"]["type"]
        if kind == "feature_flags":  # the server's answer to ours; nothing to act on
            assert message == Unknown("feature_flags", recorded["msg"]["data"])
        else:
            assert type(message) is TYPES[kind], kind
            data = recorded["msg"]["data"]
            if "prompt_id" in data:
                assert getattr(message, "prompt_id", None) == data["prompt_id"]


def test_basic_run_sequence() -> None:
    pid = "ad361542-b9b7-4326-af0d-c2afd83122fe"
    messages = [parse_message(f) for f in frames("ws_basic_run.json")]
    assert messages[0] == Status(queue_remaining=0, sid="probe-8729913c")
    assert messages[1] == Status(queue_remaining=1, sid=None)
    assert messages[3] == ExecutionStart(pid)
    assert messages[4] == ExecutionCached(pid, ())
    executing = [m.node for m in messages if isinstance(m, Executing)]
    assert executing == ["1", "2", "3", None]
    (executed,) = [m for m in messages if isinstance(m, Executed)]
    assert executed == Executed(
        pid,
        "3",
        {"images": [{"filename": "basic_00001_.png", "subfolder": "", "type": "output"}]},
    )
    assert messages[-3:] == [ExecutionSuccess(pid), Status(0), Executing(pid, None)]


def test_progress_and_snapshot() -> None:
    messages = [parse_message(f) for f in frames("ws_upscale_progress.json")]
    steps = [(m.node, m.value, m.max) for m in messages if isinstance(m, Progress)]
    assert steps == [("3", v, 9) for v in range(1, 10)]
    state = next(m for m in messages if isinstance(m, ProgressState) and "3" in m.nodes)
    assert state.nodes["1"] == NodeProgress(1.0, 1.0, "finished")
    assert state.nodes["3"].state == "running"


def test_cached_rerun_lists_cached_nodes() -> None:
    messages = [parse_message(f) for f in frames("ws_cached_rerun.json")]
    (cached,) = [m for m in messages if isinstance(m, ExecutionCached)]
    assert cached.nodes == ("1", "2", "3")


def test_type1_preview_has_image_and_no_ids() -> None:
    recorded = [r for r in sample("ws_binary_frames.json#no_feature_flags") if r["kind"] != "json"]
    message = parse_message(frame_bytes(recorded[0]))
    assert isinstance(message, Preview)
    assert message.content_type == "image/png"
    assert message.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(message.data) == recorded[0]["msg"]["total_len"] - 8
    assert (message.node_id, message.prompt_id) == (None, None)


def test_type4_preview_carries_node_and_prompt() -> None:
    name = "ws_binary_frames.json#feature_flags_preview_metadata"
    recorded = [r for r in sample(name) if r["kind"] != "json"]
    message = parse_message(frame_bytes(recorded[0]))
    assert isinstance(message, Preview)
    assert message.node_id == "3"
    assert message.prompt_id == "6ca2a450-0c0a-4739-81eb-7806992b01f3"
    assert message.content_type == "image/png"
    assert message.data.startswith(b"\x89PNG")
    assert len(message.data) == recorded[0]["msg"]["total_len"] - 8 - 165


def test_jpeg_preview() -> None:
    message = parse_message(struct.pack(">II", 1, 1) + b"\xff\xd8\xff")
    assert message == Preview("image/jpeg", b"\xff\xd8\xff")


def test_text_frame() -> None:
    (text,) = [parse_message(f) for f in frames("ws_text_frame.json") if isinstance(f, bytes)]
    assert text == Text("2", "width: 96, height: 64\n batch size: 2")


def test_execution_error_is_cleaned() -> None:
    recorded = sample("errors_and_clients.json#runtime_error_ws")
    (raw,) = [r for r in recorded if r["msg"]["type"] == "execution_error"]
    assert "traceback" in raw["msg"]["data"]
    message = parse_message(frame_bytes(raw))
    assert message == ExecutionError(
        prompt_id="a58a6cad-3452-47c2-9a49-33056a047538",
        node_id="1",
        node_type="LoadImage",
        exception_type="PIL.UnidentifiedImageError",
        exception_message="cannot identify image file 'not_really.png'",
    )


def test_execution_interrupted() -> None:
    messages = [
        parse_message(f) for f in frames("queue_interrupt.json#ws_after_interrupt_running_target")
    ]
    assert messages[-1] == ExecutionInterrupted(
        "d59fa0b3-0b3f-487d-9e20-45df486a4a6d", "3", "PreviewImage"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            '{"type": "notification", "data": {"value": "hi"}}',
            Unknown("notification", {"value": "hi"}),
        ),
        ("not json", Unknown("invalid", "not json")),
        ('{"data": {}}', Unknown("invalid", '{"data": {}}')),
        ('["status"]', Unknown("invalid", '["status"]')),
        ('{"type": "status", "data": null}', Unknown("status", None)),
        (b"", Unknown("invalid", b"")),
        (b"\x00\x00", Unknown("invalid", b"\x00\x00")),
        (struct.pack(">I", 9) + b"xyz", Unknown(9, b"xyz")),
        (struct.pack(">II", 4, 50) + b"{}", Unknown("invalid", struct.pack(">II", 4, 50) + b"{}")),
        (struct.pack(">II", 3, 10) + b"1", Unknown("invalid", struct.pack(">II", 3, 10) + b"1")),
    ],
)
def test_unexpected_frames_become_unknown(raw: str | bytes, expected: Unknown) -> None:
    assert parse_message(raw) == expected


def test_malformed_known_type_becomes_unknown() -> None:
    raw = json.dumps({"type": "progress", "data": {"value": "x", "max": 3, "node": "1"}})
    assert parse_message(raw) == Unknown("progress", {"value": "x", "max": 3, "node": "1"})


def test_unknown_messages_lose_tracebacks_and_paths() -> None:
    data = {"error": "failed at /opt/comfy/custom_nodes/x/node.py", "traceback": ["..."]}
    message = parse_message(json.dumps({"type": "custom_error", "data": data}))
    assert message == Unknown("custom_error", {"error": "failed at node.py"})
