from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from comfygate.contracts import Workflow, canonical_json, load_workflow, workflow_version

from .conftest import CONTRACT, GRAPH, Writer, graph

Load = Callable[..., Workflow]


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": [1, 2.5], "a": "é→"}) == '{"a":"é→","b":[1,2.5]}'.encode()


def test_version_is_sha256_of_graph_and_contract() -> None:
    expected = hashlib.sha256(canonical_json({"graph": GRAPH, "contract": CONTRACT})).hexdigest()
    assert workflow_version(GRAPH, CONTRACT) == expected
    assert len(expected) == 64


def test_version_is_stable_under_key_order_and_whitespace(write: Writer, tmp_path: Path) -> None:
    a = load_workflow(write("a"))
    reordered = {k: dict(reversed(list(v.items()))) for k, v in reversed(list(GRAPH.items()))}
    folder = write("b", graph=json.dumps(reordered, indent=7))
    assert load_workflow(folder).version == a.version


def test_version_changes_with_the_graph_and_the_contract(load: Load) -> None:
    base = load().version
    g = graph()
    g["4"]["inputs"]["filename_prefix"] = "other"
    assert load(graph=g).version != base
    c = json.loads(json.dumps(CONTRACT))
    c["properties"]["width"]["default"] = 32
    assert load(contract=c).version != base
