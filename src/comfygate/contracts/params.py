"""Parameters against a loaded workflow: validate them, then patch them into the graph."""

from __future__ import annotations

import copy
import random
from typing import Any

from jsonschema import ValidationError

from comfygate.contracts.metaschema import MAX_SAFE_INTEGER, pointer
from comfygate.contracts.model import Binding, Parameter, Workflow
from comfygate.contracts.text import is_multiline, text_problems
from comfygate.errors import InvalidParams

_SYSTEM_RANDOM = random.SystemRandom()


def random_range(schema: dict[str, Any]) -> tuple[int, int]:
    """The closed range an x-random integer is drawn from: its bounds, else 0..2^53-1."""
    low = 0
    high = MAX_SAFE_INTEGER
    if "minimum" in schema:
        low = _ceil(schema["minimum"])
    if "exclusiveMinimum" in schema:
        low = max(low, _floor(schema["exclusiveMinimum"]) + 1)
    if "maximum" in schema:
        high = min(high, _floor(schema["maximum"]))
    if "exclusiveMaximum" in schema:
        high = min(high, _ceil(schema["exclusiveMaximum"]) - 1)
    return low, high


def _floor(x: float) -> int:
    return int(x // 1)


def _ceil(x: float) -> int:
    return -int(-x // 1)


def fill_defaults(
    parameters: dict[str, Parameter], params: dict[str, Any], rng: random.Random
) -> dict[str, Any]:
    filled = dict(params)
    for name, param in parameters.items():
        if name in filled:
            continue
        if param.random:
            filled[name] = rng.randint(*random_range(param.schema))
        elif "default" in param.schema:
            filled[name] = copy.deepcopy(param.schema["default"])
    return filled


#: how much of a refused value a message repeats
ECHO_CHARS = 40


def _message(error: ValidationError) -> str:
    """jsonschema's message with the refused value cut to a prefix: it repeats the value
    whole, so a 3 MB prompt made a 6 MB answer (message and summary)."""
    shown = repr(error.instance)
    if len(shown) <= 2 * ECHO_CHARS:
        return error.message
    return error.message.replace(shown, f"{shown[:ECHO_CHARS]}… ({len(shown)} characters)")


def _details(error: ValidationError, known: set[str]) -> list[dict[str, str]]:
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        # One error per missing name, but only as a message: rebuild a pointer per field.
        required = error.validator_value if isinstance(error.validator_value, list) else []
        return [
            {
                "path": pointer([*path, name]),
                "message": f"{name!r} is a required property",
                "keyword": "required",
            }
            for name in required
            if name not in error.instance
        ]
    if error.validator == "additionalProperties" and not path and isinstance(error.instance, dict):
        return [
            {
                "path": pointer([name]),
                "message": f"unknown parameter {name!r}",
                "keyword": "additionalProperties",
            }
            for name in error.instance
            if name not in known
        ]
    return [{"path": pointer(path), "message": _message(error), "keyword": str(error.validator)}]


def validate_params(
    workflow: Workflow, params: dict[str, Any], *, rng: random.Random | None = None
) -> dict[str, Any]:
    """The complete parameters: defaults and x-random values filled in, every field checked.

    Raises InvalidParams whose ``details`` list each failing field as
    ``{"path": JSON Pointer, "message", "keyword"}``, sorted by path.
    """
    if not isinstance(params, dict):
        raise InvalidParams(
            "params must be an object",
            details=[{"path": "", "message": "params must be an object", "keyword": "type"}],
        )
    filled = fill_defaults(workflow.parameters, params, rng or _SYSTEM_RANDOM)
    known = set(workflow.parameters)
    unique: dict[tuple[str, str, str], dict[str, str]] = {}
    for error in workflow.validator.iter_errors(filled):
        for detail in _details(error, known):
            unique[(detail["path"], detail["keyword"], detail["message"])] = detail
    for name, value in filled.items():
        if name in workflow.parameters:
            multiline = is_multiline(workflow.parameters[name].schema)
            for path, message in text_problems([name], value, multiline=multiline):
                detail = {"path": pointer(path), "message": message, "keyword": "x-text"}
                unique[(detail["path"], detail["keyword"], detail["message"])] = detail
    if unique:
        details = [unique[k] for k in sorted(unique)]
        summary = "; ".join(f"{d['path'] or '/'}: {d['message']}" for d in details)
        raise InvalidParams(f"invalid parameters: {summary}", details=details)
    return filled


def patch_graph(workflow: Workflow, params: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the graph with every non-image parameter written into its bindings.

    ``params`` must come from validate_params. Image parameters are left as the graph has
    them: the agent uploads the file and patches the name ComfyUI gives it.
    """
    graph = copy.deepcopy(workflow.graph)
    for name, value in params.items():
        param = workflow.parameters.get(name)
        if param is None:
            raise InvalidParams(
                f"unknown parameter {name!r}",
                details=[
                    {
                        "path": pointer([name]),
                        "message": f"unknown parameter {name!r}",
                        "keyword": "additionalProperties",
                    }
                ],
            )
        if param.kind == "image":
            continue
        for binding in param.bindings:
            graph[binding.node_id]["inputs"][binding.input] = copy.deepcopy(value)
    return graph


def image_bindings(
    workflow: Workflow, params: dict[str, Any]
) -> list[tuple[str, str, tuple[Binding, ...]]]:
    """``(parameter, upload id, bindings)`` for each image parameter present in ``params``."""
    return [
        (name, params[name], param.bindings)
        for name, param in workflow.parameters.items()
        if param.kind == "image" and name in params
    ]
