from __future__ import annotations

from comfygate.jobs.fresh_prompts import FreshPrompts


def test_a_graph_is_taken_once() -> None:
    fresh = FreshPrompts()
    fresh.keep("j1", b'{"1": {}}')
    assert fresh.take("j1") == b'{"1": {}}'
    assert fresh.take("j1") is None
    assert len(fresh) == 0


def test_the_oldest_graphs_go_first_past_the_byte_bound() -> None:
    fresh = FreshPrompts(max_bytes=10, max_one=10)
    fresh.keep("a", b"aaaa")
    fresh.keep("b", b"bbbb")
    fresh.keep("c", b"cccc")  # 12 bytes: "a" goes
    assert fresh.take("a") is None
    assert fresh.take("b") == b"bbbb" and fresh.take("c") == b"cccc"


def test_a_graph_too_large_to_keep_is_not_kept() -> None:
    fresh = FreshPrompts(max_bytes=100, max_one=3)
    fresh.keep("big", b"abcd")
    assert fresh.take("big") is None


def test_keeping_a_job_again_replaces_its_graph_and_counts_it_once() -> None:
    fresh = FreshPrompts(max_bytes=8, max_one=8)
    fresh.keep("a", b"1234")
    fresh.keep("a", b"5678")
    fresh.keep("b", b"abcd")  # 8 bytes in all: both stay
    assert fresh.take("a") == b"5678" and fresh.take("b") == b"abcd"
