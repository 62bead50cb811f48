"""Reading a ComfyUI API-format graph: its shape, its titles, its links and its sinks."""

from __future__ import annotations

from typing import Any


def is_link(value: Any) -> bool:
    """An input wired to another node's output: ``["node id", output index]``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def node_order(node_id: str) -> tuple[int, int | str]:
    """Numeric ids in numeric order, then the rest: how people read a graph."""
    return (0, int(node_id)) if node_id.isdigit() else (1, node_id)


def graph_problems(graph: Any) -> list[str]:
    """Why ``graph`` is not a ComfyUI API-format export, one line each (empty when it is)."""
    if (
        isinstance(graph, dict)
        and isinstance(graph.get("nodes"), list)
        and isinstance(graph.get("links"), list)
    ):
        return [
            "this is a UI-format export (it has 'nodes' and 'links' arrays); "
            "save the workflow with 'Export (API)' instead"
        ]
    if not isinstance(graph, dict):
        return ["the graph must be a JSON object of node id -> node (ComfyUI API format)"]
    if not graph:
        return ["the graph has no nodes"]
    problems = []
    for node_id, node in graph.items():
        if not isinstance(node, dict):
            problems.append(f"node {node_id!r} is not an object")
            continue
        if not isinstance(node.get("class_type"), str) or not node["class_type"]:
            problems.append(f"node {node_id!r} has no class_type (not ComfyUI API format)")
        if not isinstance(node.get("inputs"), dict):
            problems.append(f"node {node_id!r} has no inputs object (not ComfyUI API format)")
        meta = node.get("_meta")
        if meta is not None and (
            not isinstance(meta, dict) or not isinstance(meta.get("title", ""), str)
        ):
            problems.append(f"node {node_id!r} has a _meta that is not {{'title': string}}")
    return problems


def title(node: dict[str, Any]) -> str | None:
    meta = node.get("_meta")
    value = meta.get("title") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def titles(graph: dict[str, Any]) -> dict[str, list[str]]:
    """Each ``_meta.title`` with the ids of the nodes carrying it."""
    found: dict[str, list[str]] = {}
    for node_id in sorted(graph, key=node_order):
        name = title(graph[node_id])
        if name is not None:
            found.setdefault(name, []).append(node_id)
    return found


def resolve(ref: str, graph: dict[str, Any], by_title: dict[str, list[str]]) -> str:
    """The node id ``ref`` names (an id, or a title held by exactly one node).

    Raises ValueError with the reason; an id that is also another node's title is refused
    rather than guessed at.
    """
    holders = by_title.get(ref, [])
    if ref in graph:
        others = [h for h in holders if h != ref]
        if others:
            raise ValueError(
                f"{ref!r} is the id of node {ref} and also the _meta.title of "
                f"node(s) {', '.join(others)}; rename the title"
            )
        return ref
    if not holders:
        raise ValueError(f"no node has the id or _meta.title {ref!r}")
    if len(holders) > 1:
        raise ValueError(
            f"_meta.title {ref!r} is held by {len(holders)} nodes ({', '.join(holders)}); "
            "a title used as a node reference must be unique"
        )
    return holders[0]


def describe(graph: dict[str, Any], node_id: str) -> str:
    """``node '3' (KSampler "Sampler")`` for messages."""
    node = graph[node_id]
    name = title(node)
    label = f"{node.get('class_type')}" + (f' "{name}"' if name else "")
    return f"node {node_id!r} ({label})"


def sinks(graph: dict[str, Any]) -> tuple[str, ...]:
    """Nodes no other node reads from: in an export, exactly its output nodes."""
    used = {
        value[0] for node in graph.values() for value in node["inputs"].values() if is_link(value)
    }
    return tuple(n for n in sorted(graph, key=node_order) if n not in used)
