"""The ComfyUI protocol client. Nothing else talks to ComfyUI; it knows nothing of jobs."""

from __future__ import annotations

from comfygate.comfy.client import (
    ComfyClient,
    ComfySocket,
    PromptState,
    QueueState,
    SubmitResult,
    SystemStats,
    ViewResponse,
)
from comfygate.comfy.history import ExecutionErrorInfo, HistoryEntry, OutputRef
from comfygate.comfy.messages import Message, parse_message

__all__ = [
    "ComfyClient",
    "ComfySocket",
    "ExecutionErrorInfo",
    "HistoryEntry",
    "Message",
    "OutputRef",
    "PromptState",
    "QueueState",
    "SubmitResult",
    "SystemStats",
    "ViewResponse",
    "parse_message",
]
