"""A submit's ``metadata``: the client's own notes, stored with the job and shown back.

It is kept in the database and sent with every read of the job, its events and its
webhooks, so it is held small, shallow and plain: an object of string keys and JSON
values. Keys hold no control characters (NUL breaks PostgreSQL's JSON; the others end
up in logs and pages); strings hold none but line breaks and tabs; numbers are finite."""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from comfygate.contracts.metaschema import pointer
from comfygate.contracts.text import MULTILINE_PATTERN, SINGLE_LINE_PATTERN, control_character
from comfygate.errors import InvalidParams

#: the metadata as compact JSON, in UTF-8
MAX_BYTES = 16 * 1024
#: objects and lists within one another, the metadata object itself counted
MAX_DEPTH = 8
MAX_KEY_CHARS = 200


_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_KEY_CHARS,
    "pattern": SINGLE_LINE_PATTERN,
}
#: the rules as OpenAPI components (``Metadata``, ``MetadataValue``), so clients and
#: fuzzers see them; depth and size are told in words (JSON Schema cannot count them)
SCHEMAS: dict[str, dict[str, Any]] = {
    "Metadata": {
        "type": "object",
        "description": f"Your own notes, kept with the job: at most {MAX_BYTES} bytes as "
        f"JSON and {MAX_DEPTH} levels deep.",
        "propertyNames": _KEY_SCHEMA,
        "additionalProperties": {"$ref": "#/components/schemas/MetadataValue"},
    },
    "MetadataValue": {
        "anyOf": [
            {"type": "string", "pattern": MULTILINE_PATTERN},
            {"type": ["number", "boolean", "null"]},
            {"type": "array", "items": {"$ref": "#/components/schemas/MetadataValue"}},
            {"$ref": "#/components/schemas/Metadata"},
        ]
    },
}
METADATA_REF = {"$ref": "#/components/schemas/Metadata"}


def check_metadata(metadata: Any) -> dict[str, Any]:
    """``metadata`` if it is within bounds; else InvalidParams naming each bad field."""
    if not isinstance(metadata, dict):
        _refuse(["metadata"], "type", "must be an object")
    problems: list[dict[str, str]] = []
    _walk(["metadata"], metadata, 1, problems)
    if problems:
        raise InvalidParams("the metadata is refused", details=problems[:20])
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_BYTES:
        _refuse(["metadata"], "maxBytes", f"is {size} bytes as JSON; at most {MAX_BYTES}")
    return metadata


def _refuse(path: list[Any], keyword: str, message: str) -> NoReturn:
    detail = {"path": pointer(path), "keyword": keyword, "message": message}
    raise InvalidParams(f"metadata {detail['path']}: {message}", details=[detail])


def _walk(path: list[Any], value: Any, depth: int, problems: list[dict[str, str]]) -> None:
    def problem(keyword: str, message: str) -> None:
        problems.append({"path": pointer(path), "keyword": keyword, "message": message})

    if isinstance(value, dict | list) and depth > MAX_DEPTH:
        problem("maxDepth", f"nested deeper than {MAX_DEPTH} levels")
    elif isinstance(value, dict):
        for key, item in value.items():
            # json.loads gives string keys only; the walk holds any caller to that.
            if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
                problem("propertyNames", f"a key is a string of 1 to {MAX_KEY_CHARS} characters")
                continue
            if (found := control_character(key, multiline=False)) is not None:
                # Named by the object that holds it: the key itself is what is wrong.
                problem("propertyNames", f"a key holds the control character {found}")
                continue
            _walk([*path, key], item, depth + 1, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk([*path, index], item, depth + 1, problems)
    elif isinstance(value, str):
        if (found := control_character(value, multiline=True)) is not None:
            problem("x-text", f"contains the control character {found}")
    elif isinstance(value, float) and not math.isfinite(value):
        problem("type", "a number must be finite")
    elif value is not None and not isinstance(value, bool | int | float):
        problem("type", "a JSON value: an object, list, string, number, boolean or null")
