from __future__ import annotations

from comfygate.comfy.messages import Executing, ExecutionCached, NodeProgress, ProgressState
from comfygate.comfy.messages import Progress as Step
from comfygate.worker.progress import ProgressTracker

GRAPH = {
    "1": {"class_type": "EmptyLatentImage", "inputs": {}},
    "2": {"class_type": "KSampler", "inputs": {}, "_meta": {"title": "Sampler"}},
    "3": {"class_type": "VAEDecode", "inputs": {}},
    "4": {"class_type": "SaveImage", "inputs": {}},
}


def state(**nodes: str) -> ProgressState:
    return ProgressState("p", {k: NodeProgress(0, 1, v) for k, v in nodes.items()})


def test_value_counts_nodes_and_sampler_steps() -> None:
    t = ProgressTracker(GRAPH)
    assert t.feed(ExecutionCached("p", ("1",)))
    assert t.snapshot().value == 0.25 and t.snapshot().nodes_done == 1
    t.feed(Executing("p", "2"))
    assert t.snapshot().current_node == "Sampler"
    t.feed(Step("p", "2", 5, 10))
    snap = t.snapshot()
    assert (snap.step, snap.steps) == (5, 10)
    assert snap.value == (1 + 0.5) / 4
    t.feed(state(**{"1": "finished", "2": "finished", "3": "running"}))
    snap = t.snapshot()
    assert snap.nodes_done == 2 and snap.current_node == "VAEDecode" and snap.step is None
    assert snap.value == 0.5


def test_value_never_goes_back_and_finish_is_complete() -> None:
    t = ProgressTracker(GRAPH)
    t.feed(Executing("p", "2"))
    t.feed(Step("p", "2", 9, 10))
    high = t.snapshot().value
    t.feed(state(**{"2": "finished"}))
    assert t.snapshot().value >= high - 1e-9
    final = t.finish()
    assert final.value == 1.0 and final.nodes_done == final.nodes_total == 4
    assert final.current_node is None


def test_messages_without_news_change_nothing() -> None:
    t = ProgressTracker(GRAPH)
    t.feed(Executing("p", "2"))
    assert not t.feed(Executing("p", "2"))
    assert not t.feed(Executing("p", None))
