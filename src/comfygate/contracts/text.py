"""Text parameters: bounded, and free of control characters.

A contract bounds a free-text string with ``maxLength``; one that does not gets
:data:`DEFAULT_MAX_LENGTH`, written into the schema clients see, so the bound is
always published. Text reaches ComfyUI's nodes and the server's logs and pages: a
control character there (NUL, ESC sequences, a bare CR rewriting a log line) is never
what a person meant, so every string value is refused if it holds one. Multi-line
strings (drawn as a text area, see :func:`is_multiline`) may hold ``\\n`` and ``\\t``.
"""

from __future__ import annotations

import copy
import unicodedata
from typing import Any

DEFAULT_MAX_LENGTH = 10_000
"""The bound of a string parameter whose contract gives no maxLength."""

#: a string with room for more than this many characters is multi-line text
MULTILINE_ABOVE = 200

_MULTILINE_ALLOWED = frozenset("\n\t")


def _is_free_text(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
    return is_string and "enum" not in schema and "const" not in schema


def bound_strings(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` in which every free-text string has a maxLength."""
    bounded = copy.deepcopy(schema)
    _bound(bounded)
    return bounded


def _bound(node: Any) -> None:
    if isinstance(node, dict):
        if _is_free_text(node) and "maxLength" not in node:
            node["maxLength"] = DEFAULT_MAX_LENGTH
        for key, value in node.items():
            if key not in ("default", "examples", "const", "enum"):
                _bound(value)
    elif isinstance(node, list):
        for item in node:
            _bound(item)


#: JSON Schema patterns (ECMA-262, which Python's re reads alike) for the same rule
SINGLE_LINE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
MULTILINE_PATTERN = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$"


def publish_text_rules(contract: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``contract`` whose free-text parameters state both rules: the bound,
    and (as a pattern, beside any of the contract's own) no control characters.

    The validator checks the characters itself, to name the character it refuses."""
    published = bound_strings(contract)
    for schema in (published.get("properties") or {}).values():
        if isinstance(schema, dict) and _is_free_text(schema) and schema.get("x-kind") is None:
            pattern = MULTILINE_PATTERN if is_multiline(schema) else SINGLE_LINE_PATTERN
            if "pattern" in schema:
                schema["allOf"] = [*schema.get("allOf", []), {"pattern": pattern}]
            else:
                schema["pattern"] = pattern
    return published


def is_multiline(schema: dict[str, Any]) -> bool:
    return int(schema.get("maxLength", DEFAULT_MAX_LENGTH)) > MULTILINE_ABOVE


def control_character(text: str, *, multiline: bool) -> str | None:
    """The first forbidden character of ``text`` as ``U+XXXX``, or None.

    Forbidden: controls (C0, DEL, C1) and lone surrogates, which no text encoding
    can store; ``\\n`` and ``\\t`` are allowed in multi-line text.
    """
    for ch in text:
        if multiline and ch in _MULTILINE_ALLOWED:
            continue
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return f"U+{ord(ch):04X}"
    return None


def text_problems(path: list[Any], value: Any, *, multiline: bool) -> list[tuple[list[Any], str]]:
    """``(path, message)`` for each string inside ``value`` holding a forbidden character."""
    if isinstance(value, str):
        found = control_character(value, multiline=multiline)
        if found is None:
            return []
        allowed = " (line breaks and tabs are allowed)" if multiline else ""
        return [(path, f"contains the control character {found}{allowed}")]
    if isinstance(value, dict):
        return [
            p for k, v in value.items() for p in text_problems([*path, k], v, multiline=multiline)
        ]
    if isinstance(value, list):
        return [
            p
            for i, v in enumerate(value)
            for p in text_problems([*path, i], v, multiline=multiline)
        ]
    return []
