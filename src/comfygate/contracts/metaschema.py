"""The meta-schema a ``contract.json`` must satisfy: JSON Schema 2020-12 plus our keywords.

It checks shapes only; what needs the graph (bindings) or crosses keywords (x-random on an
integer, safe integer bounds) is checked by the loader, which can name the node.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from comfygate.contracts.cost import COST_SCHEMA

DRAFT = "https://json-schema.org/draft/2020-12/schema"
MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a browser's JSON numbers carry exactly."""

KINDS = ("image",)
RESERVED = ("warm_up", "review", "stages")
"""x-comfygate keys kept for later work; a contract using one is refused, not ignored."""

_NAME = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

_BINDING: dict[str, Any] = {
    "type": "object",
    "required": ["node", "input"],
    "additionalProperties": False,
    "properties": {
        "node": {"type": "string", "minLength": 1},
        "input": {"type": "string", "minLength": 1},
    },
}

_PROPERTY: dict[str, Any] = {
    "type": "object",
    "required": ["x-bind"],
    "properties": {
        "x-bind": {
            "oneOf": [_BINDING, {"type": "array", "minItems": 1, "items": _BINDING}],
            "x-message": 'x-bind must be {"node": ID or title, "input": NAME} '
            "or a non-empty list of them",
        },
        "x-kind": {"enum": list(KINDS)},
        "x-random": {"type": "boolean"},
        "x-advanced": {"type": "boolean"},
    },
    # Unknown x- keywords are typos far more often than extensions.
    "propertyNames": {
        "not": {"pattern": "^x-(?!(bind|kind|random|advanced)$)"},
        "x-message": "unknown keyword {instance}",
    },
}

_EXAMPLE: dict[str, Any] = {
    "type": "object",
    "required": ["params"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string"},
        "description": {"type": "string"},
        "params": {"type": "object"},
    },
}

_SETTINGS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "outputs": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1},
        },
        "pool": {"type": "string", "pattern": _NAME},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
        "queue_ttl_s": {"type": "number", "exclusiveMinimum": 0},
        "retry_on_timeout": {"type": "boolean"},
        "warmup": {"type": "boolean"},
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "examples": {"type": "array", "items": _EXAMPLE},
        "cost": COST_SCHEMA,
        **{
            key: {"not": {}, "x-message": f"x-comfygate.{key} is reserved: not supported yet"}
            for key in RESERVED
        },
    },
}

META_SCHEMA: dict[str, Any] = {
    "$schema": DRAFT,
    "type": "object",
    "properties": {
        "$schema": {"const": DRAFT},
        "type": {"const": "object"},
        "properties": {"type": "object", "additionalProperties": _PROPERTY},
        "additionalProperties": {
            "const": False,
            "x-message": "additionalProperties is always false: unknown parameters are refused",
        },
        "x-comfygate": _SETTINGS,
    },
    "propertyNames": {
        "not": {"pattern": "^x-(?!comfygate$)"},
        "x-message": "unknown keyword {instance}",
    },
}

_DRAFT_CHECK = Draft202012Validator(Draft202012Validator.META_SCHEMA)
_OURS = Draft202012Validator(META_SCHEMA)


def pointer(path: Any) -> str:
    """A JSON Pointer (RFC 6901) from a sequence of keys and indexes."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _describe(error: ValidationError) -> str:
    schema = error.schema
    if isinstance(schema, dict) and "x-message" in schema:
        return str(schema["x-message"]).replace("{instance}", repr(error.instance))
    return error.message


def _where(path: list[Any]) -> str:
    if len(path) >= 2 and path[0] == "properties":
        rest = pointer(path[2:])
        return f"parameter {path[1]!r}" + (f" at {rest}" if rest else "")
    return pointer(path) or "top level"


def contract_problems(contract: Any) -> list[str]:
    """Every way ``contract`` breaks JSON Schema 2020-12 or our keywords, one line each."""
    found: dict[str, None] = {}
    for validator in (_DRAFT_CHECK, _OURS):
        errors = sorted(validator.iter_errors(contract), key=lambda e: [str(p) for p in e.path])
        for error in errors:
            found[f"{_where(list(error.path))}: {_describe(error)}"] = None
    return list(found)
