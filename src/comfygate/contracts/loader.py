"""Loading workflow folders: read, check everything, and report every problem at once."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from comfygate.contracts import graph as graphs
from comfygate.contracts.canonical import workflow_version
from comfygate.contracts.cost import FREE, Cost, cost_problems
from comfygate.contracts.metaschema import MAX_SAFE_INTEGER, contract_problems
from comfygate.contracts.model import Binding, Parameter, Workflow
from comfygate.contracts.params import random_range, validate_params
from comfygate.errors import ContractError, InvalidParams

GRAPH_FILE = "workflow.api.json"
CONTRACT_FILE = "contract.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

DEFAULT_POOL = "default"
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_QUEUE_TTL_S = 3600.0


def _raise(problems: list[str]) -> None:
    if len(problems) == 1:
        raise ContractError(problems[0], details=problems)
    lines = "\n".join(f"  - {p}" for p in problems)
    raise ContractError(f"{len(problems)} workflow problems:\n{lines}", details=problems)


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot be read: {exc}")
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(f"{path}: not valid JSON: {exc}")
        return None


def _is_integer_schema(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "integer" or (isinstance(kind, list) and "integer" in kind)


def _semantic_problems(name: str, schema: dict[str, Any]) -> list[str]:
    """Rules that cross keywords, which the meta-schema cannot phrase clearly."""
    problems = []
    if _is_integer_schema(schema) or schema.get("x-random"):
        for key in ("maximum", "exclusiveMaximum"):
            bound = schema.get(key)
            if isinstance(bound, int | float) and bound > MAX_SAFE_INTEGER + (
                key == "exclusiveMaximum"
            ):
                problems.append(
                    f"{key} {bound} exceeds 2^53-1 ({MAX_SAFE_INTEGER}), the largest integer "
                    "a browser carries exactly; lower it (a seed range of 0..2^53-1 is plenty)"
                )
        for key in ("minimum", "exclusiveMinimum"):
            bound = schema.get(key)
            if isinstance(bound, int | float) and bound < -MAX_SAFE_INTEGER - (
                key == "exclusiveMinimum"
            ):
                problems.append(f"{key} {bound} is below -(2^53-1) ({-MAX_SAFE_INTEGER})")
    if schema.get("x-random"):
        if schema.get("type") != "integer":
            problems.append('x-random needs "type": "integer"')
        elif "default" in schema:
            problems.append("x-random and default exclude each other: left out, it is random")
        elif "multipleOf" in schema or "enum" in schema or "const" in schema:
            problems.append("x-random allows only minimum/maximum bounds, not multipleOf/enum")
        else:
            low, high = random_range(schema)
            if low > high:
                problems.append(f"x-random range {low}..{high} is empty")
        if schema.get("x-kind"):
            problems.append("x-random and x-kind exclude each other")
    if schema.get("x-kind") == "image":
        if schema.get("type") != "string":
            problems.append('x-kind "image" needs "type": "string" (the value is an upload id)')
        if "default" in schema:
            problems.append('x-kind "image" cannot have a default (no upload exists yet)')
    if "default" in schema:
        errors = sorted(
            Draft202012Validator(
                schema, format_checker=Draft202012Validator.FORMAT_CHECKER
            ).iter_errors(schema["default"]),
            key=lambda e: e.message,
        )
        problems += [f"default {schema['default']!r} is invalid: {e.message}" for e in errors]
    return [f"parameter {name!r}: {p}" for p in problems]


def _bindings(
    name: str, schema: dict[str, Any], graph: dict[str, Any], problems: list[str]
) -> tuple[Binding, ...]:
    raw = schema["x-bind"]
    refs = raw if isinstance(raw, list) else [raw]
    by_title = graphs.titles(graph)
    found: list[Binding] = []
    for ref in refs:
        where = f"parameter {name!r}: x-bind node {ref['node']!r}"
        try:
            node_id = graphs.resolve(ref["node"], graph, by_title)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        node = graph[node_id]
        label = graphs.describe(graph, node_id)
        inputs = node["inputs"]
        key = ref["input"]
        if key not in inputs:
            known = ", ".join(sorted(inputs)) or "none"
            problems.append(
                f"parameter {name!r}: {label} has no input {key!r} (its inputs: {known})"
            )
            continue
        if graphs.is_link(inputs[key]):
            problems.append(
                f"parameter {name!r}: input {key!r} of {label} is wired to node "
                f"{inputs[key][0]!r}; bind a value, not a link"
            )
            continue
        if schema.get("x-kind") == "image" and not isinstance(inputs[key], str):
            problems.append(
                f"parameter {name!r}: x-kind image binds a LoadImage-style input holding a "
                f"file name, but input {key!r} of {label} holds {inputs[key]!r}"
            )
            continue
        binding = Binding(node_id, key)
        if binding in found:
            problems.append(f"parameter {name!r}: binds input {key!r} of {label} twice")
            continue
        found.append(binding)
    return tuple(found)


def _parameters(
    contract: dict[str, Any], graph: dict[str, Any] | None, problems: list[str]
) -> dict[str, Parameter]:
    properties: dict[str, Any] = contract.get("properties", {})
    required = set(contract.get("required", []))
    parameters: dict[str, Parameter] = {}
    owner: dict[Binding, str] = {}
    for name, schema in properties.items():
        problems += _semantic_problems(name, schema)
        bindings = _bindings(name, schema, graph, problems) if graph is not None else ()
        for binding in bindings:
            if binding in owner:
                problems.append(
                    f"parameter {name!r}: input {binding.input!r} of "
                    f"{graphs.describe(graph or {}, binding.node_id)} is already bound by "
                    f"parameter {owner[binding]!r}"
                )
            owner.setdefault(binding, name)
        parameters[name] = Parameter(
            name=name,
            schema=schema,
            bindings=bindings,
            kind=schema.get("x-kind"),
            random=bool(schema.get("x-random", False)),
            advanced=bool(schema.get("x-advanced", False)),
        )
    for name in sorted(required - set(properties)):
        problems.append(f"parameter {name!r}: listed in required but not in properties")
    return parameters


def _outputs(
    settings: dict[str, Any], graph: dict[str, Any] | None, problems: list[str]
) -> tuple[str, ...]:
    if graph is None:
        return ()
    if "outputs" not in settings:
        return graphs.sinks(graph)
    by_title = graphs.titles(graph)
    found: list[str] = []
    for ref in settings["outputs"]:
        try:
            node_id = graphs.resolve(ref, graph, by_title)
        except ValueError as exc:
            problems.append(f"x-comfygate.outputs node {ref!r}: {exc}")
            continue
        if node_id in found:
            problems.append(f"x-comfygate.outputs names node {node_id!r} twice")
            continue
        found.append(node_id)
    return tuple(found)


def _example_problems(workflow: Workflow) -> list[str]:
    # Examples cannot carry an upload id, so a required image may be left out of them.
    images = {f"/{n}" for n, p in workflow.parameters.items() if p.kind == "image"}
    problems = []
    for i, example in enumerate(workflow.examples):
        label = f"x-comfygate.examples[{i}]" + (
            f" ({example['title']!r})" if "title" in example else ""
        )
        try:
            validate_params(workflow, example["params"], rng=random.Random(0))
        except InvalidParams as exc:
            for detail in exc.details:
                if detail["keyword"] == "required" and detail["path"] in images:
                    continue
                problems.append(f"{label}: {detail['path']}: {detail['message']}")
    return problems


def load_workflow(folder: Path) -> Workflow:
    """Load and check one workflow folder; raise one ContractError listing every problem."""
    folder = Path(folder)
    if not NAME.match(folder.name):
        _raise([f"{folder}: the folder name is the workflow's name and must match {NAME.pattern}"])
    graph_path = folder / GRAPH_FILE
    contract_path = folder / CONTRACT_FILE

    problems: list[str] = []
    graph = _read_json(graph_path, problems)
    checked_graph: dict[str, Any] | None = None
    if not problems:
        graph_shape = graphs.graph_problems(graph)
        problems += [f"{graph_path}: {p}" for p in graph_shape]
        checked_graph = None if graph_shape else graph

    read_problems: list[str] = []
    contract = _read_json(contract_path, read_problems)
    shape = [] if read_problems else contract_problems(contract)
    problems += read_problems + [f"{contract_path}: {p}" for p in shape]
    if read_problems or shape:
        _raise(problems)

    # The contract has the right shape from here on; what is left needs the graph.
    semantic: list[str] = []
    parameters = _parameters(contract, checked_graph, semantic)
    settings: dict[str, Any] = contract.get("x-comfygate", {})
    outputs = _outputs(settings, checked_graph, semantic)
    cost_spec = settings.get("cost")
    if cost_spec is not None:
        semantic += cost_problems(cost_spec, contract.get("properties") or {})
    problems += [f"{contract_path}: {p}" for p in semantic]
    if problems:
        _raise(problems)
    assert checked_graph is not None  # no problems means the graph was checked

    workflow = Workflow(
        name=folder.name,
        path=folder,
        graph=checked_graph,
        contract=contract,
        version=workflow_version(checked_graph, contract),
        title=settings.get("title", folder.name),
        description=settings.get("description", ""),
        pool=settings.get("pool", DEFAULT_POOL),
        timeout_s=float(settings.get("timeout_s", DEFAULT_TIMEOUT_S)),
        max_attempts=int(settings.get("max_attempts", DEFAULT_MAX_ATTEMPTS)),
        queue_ttl_s=float(settings.get("queue_ttl_s", DEFAULT_QUEUE_TTL_S)),
        retry_on_timeout=bool(settings.get("retry_on_timeout", False)),
        warmup=bool(settings.get("warmup", False)),
        outputs=outputs,
        examples=tuple(settings.get("examples", ())),
        parameters=parameters,
        cost=FREE if cost_spec is None else Cost.parse(cost_spec),
    )
    examples = _example_problems(workflow)
    if examples:
        _raise([f"{contract_path}: {p}" for p in examples])
    return workflow


def load_workflows(root: Path) -> dict[str, Workflow]:
    """Every subfolder of ``root`` holding a workflow.api.json, by name.

    Folders starting with "." or "_" are skipped. Every problem of every folder is
    collected into one ContractError, so one start shows all that must be fixed.
    """
    root = Path(root)
    if not root.is_dir():
        raise ContractError(f"{root}: workflows folder not found", details=[f"{root}: not found"])
    loaded: dict[str, Workflow] = {}
    problems: list[str] = []
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith((".", "_")):
            continue
        if not (folder / GRAPH_FILE).exists():
            if (folder / CONTRACT_FILE).exists():
                problems.append(f"{folder / GRAPH_FILE}: file not found")
            continue
        try:
            loaded[folder.name] = load_workflow(folder)
        except ContractError as exc:
            problems += exc.details if isinstance(exc.details, list) else [exc.message]
    problems += _warmup_problems(loaded)
    if problems:
        _raise(problems)
    return loaded


def _warmup_problems(loaded: dict[str, Workflow]) -> list[str]:
    """A pool has at most one warm-up, and a warm-up runs unattended: no image inputs."""
    problems = []
    by_pool: dict[str, list[str]] = {}
    for wf in loaded.values():
        if not wf.warmup:
            continue
        by_pool.setdefault(wf.pool, []).append(wf.name)
        images = [p.name for p in wf.parameters.values() if p.kind == "image"]
        if images:
            problems.append(
                f"{wf.path / CONTRACT_FILE}: x-comfygate.warmup: a warm-up cannot take images "
                f"({', '.join(images)})"
            )
    for pool, names in sorted(by_pool.items()):
        if len(names) > 1:
            problems.append(f"pool {pool!r} has more than one warm-up: {', '.join(sorted(names))}")
    return problems
