"""A finished prompt as ``GET /history/{id}`` reports it (protocol notes §6).

Node outputs are the ``ui`` dicts nodes return. Files appear as lists of
``{filename, subfolder, type}`` under a key naming their kind: ``images``
(SaveImage, PreviewImage, SaveAnimatedWEBP/PNG, and video previews, which add
``animated: [true]``), ``gifs``, ``video``/``videos``, ``audio``, ``3d``. Text
previews (PreviewAny) are ``text: [str]``. Any list of file dicts under any key
is taken, so node kinds added later still reach storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from comfygate.comfy.cleaning import clean_text, scrub


@dataclass(frozen=True)
class OutputRef:
    """One file a node wrote, as ``/view`` wants it back."""

    filename: str
    subfolder: str
    #: the server folder: "output", or "temp" for previews (wiped at every server start)
    type: str
    #: the ui key the file was listed under: "images", "gifs", "video", "audio", ...
    kind: str
    #: the node marked its images as animated (animated WEBP/PNG, video previews)
    animated: bool = False


@dataclass(frozen=True)
class ExecutionErrorInfo:
    node_id: str | None
    node_type: str | None
    exception_type: str
    #: cleaned of tracebacks and server paths
    exception_message: str


@dataclass(frozen=True)
class HistoryEntry:
    prompt_id: str
    #: "success" or "error" (an interrupt is an error too; see ``interrupted``)
    status_str: str
    completed: bool
    #: node id → the files it wrote, in the node's order
    outputs: dict[str, tuple[OutputRef, ...]] = field(default_factory=dict)
    #: node id → the texts it showed (PreviewAny and other ``text`` outputs)
    texts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: ``status.messages`` as (type, data) pairs, scrubbed of tracebacks and paths
    messages: tuple[tuple[str, dict[str, Any]], ...] = ()
    error: ExecutionErrorInfo | None = None
    interrupted: bool = False
    #: the graph as the server ran it (coerced values, e.g. 64.7 → 64 for an INT)
    prompt: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status_str == "success" and self.error is None and not self.interrupted


def parse_history_entry(prompt_id: str, raw: Mapping[str, Any]) -> HistoryEntry:
    """One value of the ``/history`` dict. Tolerates missing keys: a partial entry is
    still better than a crash on a server that answers slightly differently."""
    outputs: dict[str, tuple[OutputRef, ...]] = {}
    texts: dict[str, tuple[str, ...]] = {}
    for node_id, ui in (raw.get("outputs") or {}).items():
        if not isinstance(ui, Mapping):
            continue
        refs = file_refs(ui)
        if refs:
            outputs[str(node_id)] = refs
        text = ui.get("text")
        if isinstance(text, str):
            texts[str(node_id)] = (text,)
        elif isinstance(text, list | tuple) and text:
            texts[str(node_id)] = tuple(str(t) for t in text)

    raw_status = raw.get("status")
    status: Mapping[str, Any] = raw_status if isinstance(raw_status, Mapping) else {}
    messages: list[tuple[str, dict[str, Any]]] = []
    error: ExecutionErrorInfo | None = None
    interrupted = False
    for item in status.get("messages") or []:
        if not (isinstance(item, list | tuple) and len(item) == 2):
            continue
        name, data = str(item[0]), item[1] if isinstance(item[1], Mapping) else {}
        messages.append((name, scrub(data)))
        if name == "execution_error":
            error = ExecutionErrorInfo(
                node_id=_opt(data.get("node_id")),
                node_type=_opt(data.get("node_type")),
                exception_type=str(data.get("exception_type") or ""),
                exception_message=clean_text(str(data.get("exception_message") or "")),
            )
        elif name == "execution_interrupted":
            interrupted = True
    status_str = str(status.get("status_str") or "")
    if status_str == "error" and error is None and not interrupted:
        error = ExecutionErrorInfo(None, None, "", "the prompt failed without an error message")

    prompt = raw.get("prompt")
    graph = prompt[2] if isinstance(prompt, list) and len(prompt) > 2 else None
    return HistoryEntry(
        prompt_id=prompt_id,
        status_str=status_str,
        completed=bool(status.get("completed", False)),
        outputs=outputs,
        texts=texts,
        messages=tuple(messages),
        error=error,
        interrupted=interrupted,
        prompt=graph if isinstance(graph, dict) else {},
    )


def file_refs(ui: Mapping[str, Any]) -> tuple[OutputRef, ...]:
    """The files one node's ``ui`` output lists, as /history and ``executed`` hold it."""
    animated_flags = ui.get("animated")
    animated = isinstance(animated_flags, list | tuple) and any(animated_flags)
    refs: list[OutputRef] = []
    for kind, items in ui.items():
        if not isinstance(items, list | tuple):
            continue
        for item in items:
            if isinstance(item, Mapping) and isinstance(item.get("filename"), str):
                refs.append(
                    OutputRef(
                        filename=item["filename"],
                        subfolder=str(item.get("subfolder") or ""),
                        type=str(item.get("type") or "output"),
                        kind=str(kind),
                        animated=animated and kind == "images",
                    )
                )
    return tuple(refs)


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)
