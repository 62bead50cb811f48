"""Who is asking. Every request resolves to one Principal through one dependency."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    id: str
    #: local | visitor | key | user | worker
    kind: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


#: the one principal of this stage: everything on the embedded gateway belongs to it
LOCAL = Principal(id="local", kind="local", scopes=frozenset({"jobs:read", "jobs:write", "admin"}))

VISITOR_SCOPES = frozenset({"jobs:read", "jobs:write"})


def visitor(visitor_id: str) -> Principal:
    """A browser without an account: it owns the jobs it submits and nothing else."""
    return Principal(id=visitor_id, kind="visitor", scopes=VISITOR_SCOPES)
