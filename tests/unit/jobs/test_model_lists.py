"""A gateway keeps the model lists agents sent, by digest, the most recently used."""

from __future__ import annotations

from comfygate.jobs.model_lists import ModelLists


def test_the_least_recently_used_list_goes_first() -> None:
    lists = ModelLists(kept=2)
    lists.remember("a", frozenset({"x"}))
    lists.remember("b", frozenset({"y"}))
    assert lists.get("a") == frozenset({"x"})  # a is now the most recent
    lists.remember("c", frozenset({"z"}))
    assert lists.get("b") is None
    assert lists.get("a") == frozenset({"x"}) and lists.get("c") == frozenset({"z"})
