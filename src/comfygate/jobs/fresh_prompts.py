"""Graphs this gateway accepted and no agent has leased yet, kept in memory.

On an idle pool a job is leased the moment it is accepted: the lease then carries its
graph from here instead of from storage, a read the agent would otherwise make (over
the internet, for a remote agent). Storage stays the record; what is not here (evicted,
accepted by another gateway, a retry) is read from it.
"""

from __future__ import annotations

from collections import OrderedDict

#: graphs kept at most, oldest dropped first: a queue longer than this is read anyway
MAX_BYTES = 16 * 1024 * 1024
#: a graph larger than this (embedded data) is not kept
MAX_ONE = 1024 * 1024


class FreshPrompts:
    def __init__(self, max_bytes: int = MAX_BYTES, max_one: int = MAX_ONE) -> None:
        self._graphs: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._max_one = max_one

    def keep(self, job_id: str, graph: bytes) -> None:
        if len(graph) > self._max_one:
            return
        self.take(job_id)
        self._graphs[job_id] = graph
        self._bytes += len(graph)
        while self._bytes > self._max_bytes:
            _, dropped = self._graphs.popitem(last=False)
            self._bytes -= len(dropped)

    def take(self, job_id: str) -> bytes | None:
        """The graph of ``job_id``, forgotten here: a job is leased once, and a retry
        reads storage."""
        graph = self._graphs.pop(job_id, None)
        if graph is not None:
            self._bytes -= len(graph)
        return graph

    def __len__(self) -> int:
        return len(self._graphs)
