"""Tracebacks and server paths never leave comfy/.

ComfyUI puts full tracebacks and absolute paths into validation errors and
``execution_error`` messages (protocol notes §12). Everything that comfy/ hands
upward as text goes through :func:`clean_text`, and every raw dict through
:func:`scrub`. Directory prefixes are dropped, the file name is kept: "cannot
identify image file 'not_really.png'" still tells the user what went wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: keys whose values are server internals, dropped wherever they appear
SECRET_KEYS = frozenset({"traceback"})

_PATHS = re.compile(
    r"""
      <comfy_\w+>(?:[/\\][^/\\\s'"<>]+)*[/\\]         # <comfy_root>/input/ (captures)
    | <comfy_\w+>[/\\]?                                 # a bare placeholder
    | (?<![\w.:/~-])/(?:[^/\s'"<>:]+/)+                 # /srv/comfy/input/  (not inside a URL)
    | (?<![\w])[A-Za-z]:[\\/](?:[^\\/\s'"<>:]+[\\/])*   # Windows drive paths
    | (?<![\w/])~/(?:[^/\s'"<>]+/)*                     # ~/ComfyUI/input/
    """,
    re.VERBOSE,
)
_TRACEBACK = re.compile(r"Traceback \(most recent call last\):.*", re.DOTALL)
_FILE_LINE = re.compile(r'\s*File "[^"]*", line \d+.*', re.DOTALL)


def clean_text(text: str) -> str:
    """Drop tracebacks and absolute directory prefixes (``/srv/comfy/input/x.png`` → ``x.png``)."""
    text = _TRACEBACK.sub("", text)
    text = _FILE_LINE.sub("", text)
    return _PATHS.sub("", text).strip()


def scrub(value: Any) -> Any:
    """A copy of a JSON value without traceback keys and with every string cleaned."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {str(k): scrub(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def _class_type(prompt: Mapping[str, Any] | None, node_id: str | None) -> str | None:
    if prompt is None or node_id is None:
        return None
    node = prompt.get(node_id)
    if isinstance(node, Mapping) and isinstance(node.get("class_type"), str):
        return str(node["class_type"])
    return None


def clean_node_errors(
    node_errors: Any, prompt: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """``node_errors`` of a ``POST /prompt`` answer as a flat list, one entry per error:
    ``{node_id, class_type, type, message, details, input_name}``."""
    out: list[dict[str, Any]] = []
    if not isinstance(node_errors, Mapping):
        return out
    for node_id, entry in node_errors.items():
        if not isinstance(entry, Mapping):
            continue
        class_type = entry.get("class_type") or _class_type(prompt, str(node_id))
        for err in entry.get("errors") or []:
            if not isinstance(err, Mapping):
                continue
            extra = err.get("extra_info")
            input_name = extra.get("input_name") if isinstance(extra, Mapping) else None
            out.append(
                {
                    "node_id": str(node_id),
                    "class_type": None if class_type is None else str(class_type),
                    "type": None if err.get("type") is None else str(err["type"]),
                    "message": clean_text(str(err.get("message") or "")),
                    "details": clean_text(str(err.get("details") or "")),
                    "input_name": None if input_name is None else str(input_name),
                }
            )
    return out


_NODE_ID = re.compile(r"Node ID '#([^']+)'")


def clean_prompt_error(error: Any, prompt: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The top-level ``error`` of a refused prompt in the shape of one node error.

    ``invalid_prompt`` names its node only inside ``details`` ("Node ID '#2'"),
    so the node id is read from there and its class from the graph we sent.
    """
    err = error if isinstance(error, Mapping) else {}
    details = str(err.get("details") or "")
    match = _NODE_ID.search(details)
    node_id = match.group(1) if match else None
    return {
        "node_id": node_id,
        "class_type": _class_type(prompt, node_id),
        "type": None if err.get("type") is None else str(err["type"]),
        "message": clean_text(str(err.get("message") or "")),
        "details": clean_text(details),
        "input_name": None,
    }
