"""Checking a workflow against a ComfyUI ``/object_info``: the check ComfyUI would make.

Used by ``comfygate workflows check --object-info``; loading never needs a server.
Model and input-file lists reflect a server's disk, so a value missing from one of them
is not a problem here (a server without weights lists none).
"""

from __future__ import annotations

from typing import Any

from comfygate.contracts import graph as graphs
from comfygate.contracts.model import Workflow

_SCALARS = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def _spec(info: dict[str, Any], name: str) -> list[Any] | None:
    inputs = info.get("input") or {}
    for section in ("required", "optional"):
        spec = (inputs.get(section) or {}).get(name)
        if isinstance(spec, list) and spec:
            return spec
    return None


def _opts(spec: list[Any]) -> dict[str, Any]:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def _options(spec: list[Any]) -> list[Any] | None:
    """The choices of an enum input (both encodings), or None when it is no enum."""
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO":
        options = _opts(spec).get("options")
        return options if isinstance(options, list) else []
    return None


def _file_backed(spec: list[Any]) -> bool:
    opts = _opts(spec)
    return not _options(spec) or bool(opts.get("image_upload")) or "remote" in opts


def _value_problem(spec: list[Any], value: Any) -> str | None:
    options = _options(spec)
    if options is not None:
        if not isinstance(value, str):
            return f"{value!r} is not one of the choices (a string)"
        if not _file_backed(spec) and value not in options:
            return f"{value!r} is not one of {options}"
        return None
    kind = spec[0]
    opts = _opts(spec)
    if kind == "INT" and (not isinstance(value, int) or isinstance(value, bool)):
        return f"{value!r} is not an integer"
    if kind == "FLOAT" and (not isinstance(value, int | float) or isinstance(value, bool)):
        return f"{value!r} is not a number"
    if kind == "STRING" and not isinstance(value, str):
        return f"{value!r} is not a string"
    if kind == "BOOLEAN" and not isinstance(value, bool):
        return f"{value!r} is not a boolean"
    if kind in ("INT", "FLOAT"):
        if "min" in opts and value < opts["min"]:
            return f"{value!r} is below the minimum {opts['min']}"
        if "max" in opts and value > opts["max"]:
            return f"{value!r} is above the maximum {opts['max']}"
    if kind not in _SCALARS and kind != "*":
        return f"takes a link from a {kind} output, not the value {value!r}"
    return None


def _node_problems(graph: dict[str, Any], object_info: dict[str, Any]) -> list[str]:
    problems = []
    for node_id in sorted(graph, key=graphs.node_order):
        node = graph[node_id]
        label = graphs.describe(graph, node_id)
        info = object_info.get(node["class_type"])
        if not isinstance(info, dict):
            problems.append(f"{label}: unknown class_type {node['class_type']!r}")
            continue
        declared = info.get("input") or {}
        required = declared.get("required") or {}
        known = {*required, *(declared.get("optional") or {}), *(declared.get("hidden") or {})}
        for name in required:
            if name not in node["inputs"]:
                problems.append(f"{label}: required input {name!r} is missing")
        for name, value in node["inputs"].items():
            if name not in known:
                problems.append(f"{label}: {node['class_type']} has no input {name!r}")
                continue
            spec = _spec(info, name)
            if spec is None:
                continue
            if graphs.is_link(value):
                problems += _link_problems(graph, object_info, label, name, spec, value)
                continue
            problem = _value_problem(spec, value)
            if problem:
                problems.append(f"{label}: input {name!r}: {problem}")
    return problems


def _link_problems(
    graph: dict[str, Any],
    object_info: dict[str, Any],
    label: str,
    name: str,
    spec: list[Any],
    link: list[Any],
) -> list[str]:
    source_id, index = link
    if source_id not in graph:
        return [f"{label}: input {name!r} links to missing node {source_id!r}"]
    source = object_info.get(graph[source_id]["class_type"])
    if not isinstance(source, dict):
        return []  # reported on the source node itself
    kinds = source.get("output") or []
    if not 0 <= index < len(kinds):
        return [
            f"{label}: input {name!r} reads output {index} of node {source_id!r}, which has "
            f"{len(kinds)} output(s)"
        ]
    want, got = spec[0], kinds[index]
    compatible = not isinstance(want, str) or want in ("*", "COMBO") or got == "*"
    if not compatible and got not in want.split(","):
        return [
            f"{label}: input {name!r} takes {want} but node {source_id!r} output {index} is {got}"
        ]
    return []


def _range_problems(schema: dict[str, Any], spec: list[Any]) -> list[str]:
    """Where the contract lets through a value the node would refuse."""
    problems = []
    options = _options(spec)
    if options is not None:
        if _file_backed(spec):
            return []
        allowed = schema.get("enum", [schema["const"]] if "const" in schema else None)
        if allowed is None:
            return [f"accepts any string but the input takes only {options}"]
        missing = [v for v in allowed if v not in options]
        return [f"allows {missing} which the input does not offer"] if missing else []
    kind, opts = spec[0], _opts(spec)
    schema_type = schema.get("type")
    expected = {"INT": "integer", "FLOAT": "number", "STRING": "string", "BOOLEAN": "boolean"}
    if kind in expected:
        fits = schema_type == expected[kind] or (kind == "FLOAT" and schema_type == "integer")
        if not fits:
            problems.append(f"is of type {schema_type!r} but the input takes {kind}")
    if kind in ("INT", "FLOAT"):
        low = max(
            [b for b in (schema.get("minimum"), schema.get("exclusiveMinimum")) if b is not None],
            default=None,
        )
        high = min(
            [b for b in (schema.get("maximum"), schema.get("exclusiveMaximum")) if b is not None],
            default=None,
        )
        if "min" in opts and (low is None or low < opts["min"]):
            problems.append(f"allows values below the input's minimum {opts['min']}")
        if "max" in opts and (high is None or high > opts["max"]):
            problems.append(f"allows values above the input's maximum {opts['max']}")
    return problems


def validate_against_object_info(workflow: Workflow, object_info: dict[str, Any]) -> list[str]:
    """Every way the graph, the contract's ranges, defaults and examples would meet a refusal
    from the server that served ``object_info``; one line each, empty when all is well."""
    graph = workflow.graph
    problems = _node_problems(graph, object_info)

    # Only declared outputs: the default (the graph's sinks) may hold a stray unused node.
    declared = workflow.outputs if "outputs" in workflow.contract.get("x-comfygate", {}) else ()
    for node_id in declared:
        info = object_info.get(graph[node_id]["class_type"])
        if isinstance(info, dict) and not info.get("output_node"):
            problems.append(
                f"x-comfygate.outputs: {graphs.describe(graph, node_id)} is not an output node"
            )

    samples: list[tuple[str, dict[str, Any]]] = [
        (
            "default",
            {
                n: p.schema["default"]
                for n, p in workflow.parameters.items()
                if "default" in p.schema
            },
        )
    ]
    samples += [(f"examples[{i}]", ex.get("params", {})) for i, ex in enumerate(workflow.examples)]
    for name, param in workflow.parameters.items():
        for binding in param.bindings:
            node = graph[binding.node_id]
            info = object_info.get(node["class_type"])
            spec = _spec(info, binding.input) if isinstance(info, dict) else None
            if spec is None:
                continue
            where = (
                f"parameter {name!r} -> {graphs.describe(graph, binding.node_id)} "
                f"input {binding.input!r}"
            )
            if param.kind == "image":
                if not _opts(spec).get("image_upload"):
                    problems.append(f"{where}: x-kind image needs an image upload input")
                continue
            problems += [f"{where}: {p}" for p in _range_problems(param.schema, spec)]
            for label, values in samples:
                if name in values:
                    problem = _value_problem(spec, values[name])
                    if problem:
                        problems.append(f"{where}: {label} {problem}")
    return list(dict.fromkeys(problems))
