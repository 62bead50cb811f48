"""ComfyUI WebSocket messages as typed values, parsed by one pure function.

Shapes follow the captures in shared/comfyui/samples/ws_*.json (protocol notes §5).
Newer ComfyUI servers add message types; those arrive as :class:`Unknown` and
never break a reader.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from comfygate.comfy.cleaning import clean_text, scrub


@dataclass(frozen=True)
class Status:
    """Queue length (running + pending); ``sid`` only in the greeting after connect."""

    queue_remaining: int
    sid: str | None = None


@dataclass(frozen=True)
class ExecutionStart:
    prompt_id: str


@dataclass(frozen=True)
class ExecutionCached:
    prompt_id: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Executing:
    """``node is None`` is the legacy "prompt finished" signal, sent on success, error and
    interrupt alike."""

    prompt_id: str | None
    node: str | None


@dataclass(frozen=True)
class Progress:
    """Step progress of one node. ``value`` need not reach ``max``: never read it as done."""

    prompt_id: str | None
    node: str | None
    value: int
    max: int


@dataclass(frozen=True)
class NodeProgress:
    value: float
    max: float
    #: "running" or "finished" (pending nodes are absent from the snapshot)
    state: str


@dataclass(frozen=True)
class ProgressState:
    """A full snapshot of every started node, sent on each node start, finish and tick."""

    prompt_id: str
    nodes: dict[str, NodeProgress] = field(default_factory=dict)


@dataclass(frozen=True)
class Executed:
    prompt_id: str
    node: str
    output: dict[str, Any]


@dataclass(frozen=True)
class ExecutionSuccess:
    prompt_id: str


@dataclass(frozen=True)
class ExecutionError:
    """A node raised. The message is cleaned; the traceback is dropped."""

    prompt_id: str
    node_id: str | None
    node_type: str | None
    exception_type: str
    exception_message: str


@dataclass(frozen=True)
class ExecutionInterrupted:
    prompt_id: str
    node_id: str | None
    node_type: str | None


@dataclass(frozen=True)
class Preview:
    """A binary preview image. Type-1 frames carry no node or prompt id; type-4 frames
    (negotiated with ``feature_flags``) do."""

    content_type: str
    data: bytes
    node_id: str | None = None
    prompt_id: str | None = None


@dataclass(frozen=True)
class Text:
    """A binary type-3 frame: text a node shows in the UI (e.g. GetImageSize)."""

    node_id: str
    text: str


@dataclass(frozen=True)
class Unknown:
    """Anything not understood: a newer message type, a new binary event, or garbage.

    ``type`` is the JSON ``type`` string, the binary event number, or ``"invalid"``.
    """

    type: str | int
    data: Any


Message = (
    Status
    | ExecutionStart
    | ExecutionCached
    | Executing
    | Progress
    | ProgressState
    | Executed
    | ExecutionSuccess
    | ExecutionError
    | ExecutionInterrupted
    | Preview
    | Text
    | Unknown
)

#: binary event types (server.py BinaryEventTypes)
PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4

_IMAGE_FORMATS = {1: "image/jpeg", 2: "image/png"}


def parse_message(raw: str | bytes) -> Message:
    """One frame of ``/ws`` as a typed message. Never raises: anything unexpected becomes
    :class:`Unknown`."""
    try:
        if isinstance(raw, bytes | bytearray | memoryview):
            return _parse_binary(bytes(raw))
        msg = json.loads(raw)
        kind = msg["type"]
        data = msg.get("data")
        if not isinstance(kind, str):
            return Unknown("invalid", raw)
        if not isinstance(data, dict):
            return Unknown(kind, data)
        try:
            return _parse_json(kind, data)
        except (ValueError, KeyError, TypeError, AttributeError):
            return Unknown(kind, scrub(data))
    except (ValueError, KeyError, TypeError, AttributeError, struct.error):
        return Unknown("invalid", raw)


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _parse_binary(raw: bytes) -> Message:
    (kind,) = struct.unpack(">I", raw[:4])
    if kind == PREVIEW_IMAGE:
        (fmt,) = struct.unpack(">I", raw[4:8])
        content_type = _IMAGE_FORMATS.get(fmt, "application/octet-stream")
        return Preview(content_type=content_type, data=raw[8:])
    if kind == PREVIEW_IMAGE_WITH_METADATA:
        (size,) = struct.unpack(">I", raw[4:8])
        if len(raw) < 8 + size:
            raise ValueError("preview frame shorter than its metadata")
        meta = json.loads(raw[8 : 8 + size])
        if not isinstance(meta, dict):
            raise TypeError("preview metadata is not an object")
        return Preview(
            content_type=str(meta.get("image_type") or "application/octet-stream"),
            data=raw[8 + size :],
            node_id=_opt(meta.get("node_id")),
            prompt_id=_opt(meta.get("prompt_id")),
        )
    if kind == TEXT:
        (size,) = struct.unpack(">I", raw[4:8])
        if len(raw) < 8 + size:
            raise ValueError("text frame shorter than its node id")
        node = raw[8 : 8 + size].decode("utf-8", "replace")
        return Text(node_id=node, text=raw[8 + size :].decode("utf-8", "replace"))
    return Unknown(kind, raw[4:])


def _parse_json(kind: str, data: dict[str, Any]) -> Message:
    pid = str(data.get("prompt_id") or "")
    if kind == "status":
        info = (data.get("status") or {}).get("exec_info") or {}
        return Status(int(info.get("queue_remaining", 0)), _opt(data.get("sid")))
    if kind == "execution_start":
        return ExecutionStart(pid)
    if kind == "execution_cached":
        return ExecutionCached(pid, tuple(str(n) for n in data.get("nodes") or ()))
    if kind == "executing":
        return Executing(_opt(data.get("prompt_id")), _opt(data.get("node")))
    if kind == "progress":
        return Progress(
            _opt(data.get("prompt_id")),
            _opt(data.get("node")),
            int(data["value"]),
            int(data["max"]),
        )
    if kind == "progress_state":
        nodes = {
            str(node_id): NodeProgress(
                float(state.get("value", 0)),
                float(state.get("max", 1)),
                str(state.get("state", "")),
            )
            for node_id, state in (data.get("nodes") or {}).items()
        }
        return ProgressState(pid, nodes)
    if kind == "executed":
        output = data.get("output")
        return Executed(pid, str(data["node"]), output if isinstance(output, dict) else {})
    if kind == "execution_success":
        return ExecutionSuccess(pid)
    if kind == "execution_error":
        return ExecutionError(
            pid,
            _opt(data.get("node_id")),
            _opt(data.get("node_type")),
            str(data.get("exception_type") or ""),
            clean_text(str(data.get("exception_message") or "")),
        )
    if kind == "execution_interrupted":
        return ExecutionInterrupted(pid, _opt(data.get("node_id")), _opt(data.get("node_type")))
    return Unknown(kind, scrub(data))
