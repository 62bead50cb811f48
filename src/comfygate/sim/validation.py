"""``POST /prompt`` validation, ported step by step from ComfyUI 0.3.64's ``execution.py``.

The port keeps the real server's quirks on purpose, because clients meet them: values are
coerced in place (``64.7`` for an INT becomes ``64`` in the stored prompt), unknown input
keys are ignored, inputs with a custom validator skip the min/max/list checks, only nodes
reachable from output nodes are checked, and one valid output is enough for a ``200``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfygate.sim.specs import ANY_TYPE, NodeSpecs, input_info
from comfygate.sim.tracebacks import LOOKUP_LINKED_NODE, LOOKUP_OUTPUT_SLOT, validation_frames

Prompt = dict[str, Any]
Reasons = list[dict[str, Any]]
Checked = tuple[bool, Reasons, str]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    error: dict[str, Any] | None
    outputs: list[str]
    node_errors: dict[str, Any] = field(default_factory=dict)


class _Crash(Exception):
    """An exception at one of the two lookups the real code does outside any ``try``."""

    def __init__(self, cause: Exception, site: str) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.site = site


def full_type_name(exc: BaseException) -> str:
    klass = type(exc)
    if klass.__module__ == "builtins":
        return klass.__qualname__
    return f"{klass.__module__}.{klass.__qualname__}"


def _error(kind: str, message: str, details: str = "") -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def is_link(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int | float)
    )


def types_match(received: Any, expected: Any) -> bool:
    """ComfyUI's ``validate_node_input`` (non-strict), with ``*`` accepting anything."""
    if expected == ANY_TYPE or received == expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return bool(got & want)


def image_exists(input_dir: Path, name: str) -> bool:
    """``folder_paths.exists_annotated_filepath`` with the simulator's folders."""
    base = input_dir
    for tag, folder in (("[output]", "output"), ("[input]", "input"), ("[temp]", "temp")):
        if name.endswith(tag):
            name = name[: -(len(tag) + 1)]
            base = input_dir.parent / folder
            break
    return os.path.exists(os.path.join(base, name))


class _Validator:
    def __init__(self, prompt: Prompt, specs: NodeSpecs, input_dir: Path, root: str) -> None:
        self.prompt = prompt
        self.specs = specs
        self.input_dir = input_dir
        self.root = root
        self.validated: dict[str, Checked] = {}
        self.visiting: set[str] = set()

    def inputs(self, unique_id: str) -> Checked:
        if unique_id in self.validated:
            return self.validated[unique_id]
        if unique_id in self.visiting:
            # A cycle. The real server recurses until RecursionError and, unwinding, overwrites
            # every entry with "invalid, no reasons": a 400 without node errors. Same outcome.
            return (False, [], unique_id)
        self.visiting.add(unique_id)
        try:
            return self._inputs(unique_id)
        finally:
            self.visiting.discard(unique_id)

    def _inputs(self, unique_id: str) -> Checked:
        node = self.prompt[unique_id]
        inputs = node["inputs"]
        class_type = node["class_type"]
        class_inputs = self.specs.input_types(class_type)
        # Only LoadImage has a custom validator among the simulated classes.
        custom = ["image"] if class_type == "LoadImage" else []
        errors: Reasons = []
        valid = True
        names = [*class_inputs.get("required", {}), *class_inputs.get("optional", {})]
        for x in names:
            input_type, category, extra_info = input_info(class_inputs, x)
            if x not in inputs:
                if category == "required":
                    errors.append(
                        {
                            "type": "required_input_missing",
                            "message": "Required input is missing",
                            "details": f"{x}",
                            "extra_info": {"input_name": x},
                        }
                    )
                continue
            val = inputs[x]
            info = [input_type, extra_info]
            if isinstance(val, list):
                if len(val) != 2:
                    errors.append(
                        {
                            "type": "bad_linked_input",
                            "message": "Bad linked input, must be a length-2 list of "
                            "[node_id, slot_index]",
                            "details": f"{x}",
                            "extra_info": {
                                "input_name": x,
                                "input_config": info,
                                "received_value": val,
                            },
                        }
                    )
                    continue
                o_id = val[0]
                try:
                    o_class_type = self.prompt[o_id]["class_type"]
                except Exception as ex:
                    raise _Crash(ex, LOOKUP_LINKED_NODE) from ex
                try:
                    received_type = tuple(self.specs.return_types(o_class_type))[val[1]]
                except Exception as ex:
                    raise _Crash(ex, LOOKUP_OUTPUT_SLOT) from ex
                if not types_match(received_type, input_type):
                    errors.append(
                        {
                            "type": "return_type_mismatch",
                            "message": "Return type mismatch between linked nodes",
                            "details": f"{x}, received_type({received_type}) mismatch "
                            f"input_type({input_type})",
                            "extra_info": {
                                "input_name": x,
                                "input_config": info,
                                "received_type": received_type,
                                "linked_node": val,
                            },
                        }
                    )
                    continue
                try:
                    r = self.inputs(o_id)
                    if r[0] is False:
                        valid = False
                        continue
                except _Crash as crash:
                    valid = False
                    cause = crash.cause
                    self.validated[o_id] = (
                        False,
                        [
                            {
                                "type": "exception_during_inner_validation",
                                "message": "Exception when validating inner node",
                                "details": str(cause),
                                "extra_info": {
                                    "input_name": x,
                                    "input_config": info,
                                    "exception_message": str(cause),
                                    "exception_type": full_type_name(cause),
                                    "traceback": validation_frames(
                                        self.root, from_prompt=False, site=crash.site
                                    ),
                                    "linked_node": val,
                                },
                            }
                        ],
                        o_id,
                    )
                    continue
            else:
                try:
                    if isinstance(val, dict) and "__value__" in val:
                        val = val["__value__"]
                        inputs[x] = val
                    if input_type == "INT":
                        val = int(val)
                        inputs[x] = val
                    if input_type == "FLOAT":
                        val = float(val)
                        inputs[x] = val
                    if input_type == "STRING":
                        val = str(val)
                        inputs[x] = val
                    if input_type == "BOOLEAN":
                        val = bool(val)
                        inputs[x] = val
                except Exception as ex:
                    errors.append(
                        {
                            "type": "invalid_input_type",
                            "message": f"Failed to convert an input value to a {input_type} value",
                            "details": f"{x}, {val}, {ex}",
                            "extra_info": {
                                "input_name": x,
                                "input_config": info,
                                "received_value": val,
                                "exception_message": str(ex),
                            },
                        }
                    )
                    continue
                if x not in custom:
                    error = self._check_value(x, val, input_type, extra_info, info)
                    if error is not None:
                        errors.append(error)
                        continue
        if custom and "image" in inputs:
            image = inputs["image"]
            if not is_link(image):
                message = None
                if not isinstance(image, str) or not image_exists(self.input_dir, image):
                    message = f"Invalid image file: {image}"
                if message is not None:
                    errors.append(
                        {
                            "type": "custom_validation_failed",
                            "message": "Custom validation failed for node",
                            "details": f"image - {message}",
                            "extra_info": {"input_name": "image"},
                        }
                    )
        result: Checked = (
            (False, errors, unique_id) if errors or not valid else (True, [], unique_id)
        )
        self.validated[unique_id] = result
        return result

    @staticmethod
    def _check_value(
        x: str, val: Any, input_type: Any, extra_info: dict[str, Any], info: list[Any]
    ) -> dict[str, Any] | None:
        if "min" in extra_info and val < extra_info["min"]:
            return {
                "type": "value_smaller_than_min",
                "message": "Value {} smaller than min of {}".format(val, extra_info["min"]),
                "details": f"{x}",
                "extra_info": {"input_name": x, "input_config": info, "received_value": val},
            }
        if "max" in extra_info and val > extra_info["max"]:
            return {
                "type": "value_bigger_than_max",
                "message": "Value {} bigger than max of {}".format(val, extra_info["max"]),
                "details": f"{x}",
                "extra_info": {"input_name": x, "input_config": info, "received_value": val},
            }
        if isinstance(input_type, list) and val not in input_type:
            input_config: list[Any] | None = info
            if len(input_type) > 20:
                # The real server does not echo long lists (model folders) back.
                list_info = f"(list of length {len(input_type)})"
                input_config = None
            else:
                list_info = str(input_type)
            return {
                "type": "value_not_in_list",
                "message": "Value not in list",
                "details": f"{x}: '{val}' not in {list_info}",
                "extra_info": {
                    "input_name": x,
                    "input_config": input_config,
                    "received_value": val,
                },
            }
        return None


def validate_prompt(
    prompt: Any,
    partial_targets: list[str] | None,
    specs: NodeSpecs,
    input_dir: Path,
    root: str,
) -> Verdict:
    """Check a prompt the way ComfyUI does; coerces values of ``prompt`` in place.

    Anything the real server would crash on (a prompt that is not an object, a node that is
    not an object) raises here too, and the caller answers 500 like the real one.
    """
    outputs: list[str] = []
    for x in prompt:
        if "class_type" not in prompt[x]:
            return Verdict(
                False,
                _error(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{x}'",
                ),
                [],
            )
        class_type = prompt[x]["class_type"]
        if class_type not in specs:
            return Verdict(
                False,
                _error(
                    "invalid_prompt",
                    f"Cannot execute because node {class_type} does not exist.",
                    f"Node ID '#{x}'",
                ),
                [],
            )
        if specs.is_output(class_type) and (partial_targets is None or x in partial_targets):
            outputs.append(x)
    if not outputs:
        return Verdict(False, _error("prompt_no_outputs", "Prompt has no outputs"), [])

    checker = _Validator(prompt, specs, input_dir, root)
    good: list[str] = []
    failed: list[tuple[str, Reasons]] = []
    node_errors: dict[str, Any] = {}
    for o in outputs:
        try:
            valid, reasons, _ = checker.inputs(o)
        except _Crash as crash:
            valid = False
            reasons = [
                {
                    "type": "exception_during_validation",
                    "message": "Exception when validating node",
                    "details": str(crash.cause),
                    "extra_info": {
                        "exception_type": full_type_name(crash.cause),
                        "traceback": validation_frames(root, from_prompt=True, site=crash.site),
                    },
                }
            ]
            checker.validated[o] = (False, reasons, o)
        if valid:
            good.append(o)
            continue
        failed.append((o, reasons))
        # Like the real loop, this tags every failing node seen so far with this output.
        for node_id, (node_valid, node_reasons, _) in checker.validated.items():
            if node_valid is not True and node_reasons:
                if node_id not in node_errors:
                    node_errors[node_id] = {
                        "errors": node_reasons,
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    }
                node_errors[node_id]["dependent_outputs"].append(o)

    if not good:
        details = "\n".join(
            f"{reason['message']}: {reason['details']}"
            for _, reasons in failed
            for reason in reasons
        )
        error = _error(
            "prompt_outputs_failed_validation", "Prompt outputs failed validation", details
        )
        return Verdict(False, error, [], node_errors)
    return Verdict(True, None, good, node_errors)
