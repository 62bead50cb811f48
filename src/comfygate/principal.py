"""Who is asking. Every request resolves to one Principal through one dependency."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    id: str
    #: local | visitor | key | user | worker | admin
    kind: str
    scopes: frozenset[str]
    #: an API key's default webhook: a submit that names none sends its events here
    webhook_url: str | None = None

    def can(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


#: who a request without credentials is on the embedded gateway: it may run and read its
#: own jobs, but the admin API needs the admin token
LOCAL = Principal(id="local", kind="local", scopes=frozenset({"jobs:read", "jobs:write"}))
#: the operator, signed in with the admin token (cookie or bearer)
ADMIN = Principal(id="admin", kind="admin", scopes=frozenset({"admin"}))

VISITOR_SCOPES = frozenset({"jobs:read", "jobs:write"})


def visitor(visitor_id: str) -> Principal:
    """A browser without an account: it owns the jobs it submits and nothing else."""
    return Principal(id=visitor_id, kind="visitor", scopes=VISITOR_SCOPES)
