"""The model lists agents named by digest: a gateway keeps the lists it was sent, so an
agent sends its (maybe very long) list once per gateway instead of with every lease."""

from __future__ import annotations

from collections import OrderedDict

#: lists kept per gateway: a pool of backends usually shares a handful of them
KEPT = 256


class ModelLists:
    def __init__(self, kept: int = KEPT) -> None:
        self._lists: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._kept = kept

    def remember(self, digest: str, models: frozenset[str]) -> None:
        self._lists[digest] = models
        self._lists.move_to_end(digest)
        while len(self._lists) > self._kept:
            self._lists.popitem(last=False)

    def get(self, digest: str) -> frozenset[str] | None:
        models = self._lists.get(digest)
        if models is not None:
            self._lists.move_to_end(digest)
        return models
