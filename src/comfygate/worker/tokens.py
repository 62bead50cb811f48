"""Worker tokens: a remote agent's credential. Only a hash of the secret is stored, so a
leaked database hands out no working token; the secret is shown once, at creation."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from comfygate.clock import Clock
from comfygate.ids import new_id
from comfygate.principal import Principal

#: every worker token starts so, which tells it apart from the admin token at a glance
PREFIX = "cgw_"
WORKER_SCOPES = frozenset({"worker"})


@dataclass(frozen=True, kw_only=True)
class WorkerToken:
    id: str
    name: str
    #: the only pool this token may lease from, or None for any
    pool: str | None
    created_at: datetime
    revoked_at: datetime | None = None

    def principal(self) -> Principal:
        return Principal(id=f"worker:{self.id}", kind="worker", scopes=WORKER_SCOPES)


class TokenStore(Protocol):
    async def add(self, token: WorkerToken, secret_hash: str) -> None: ...

    async def all(self) -> list[WorkerToken]: ...

    async def by_hash(self, secret_hash: str) -> WorkerToken | None: ...

    async def revoke(self, token_id: str, *, now: datetime) -> bool: ...


def hash_secret(secret: str) -> str:
    # The secret has 256 random bits: a plain hash is enough, no slow KDF needed.
    return hashlib.sha256(secret.encode()).hexdigest()


class WorkerTokens:
    def __init__(self, store: TokenStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(self, name: str, *, pool: str | None = None) -> tuple[WorkerToken, str]:
        """The new token and its secret (the only time the secret is known)."""
        token = WorkerToken(id=new_id(), name=name, pool=pool, created_at=self._clock.now())
        secret = PREFIX + secrets.token_urlsafe(32)
        await self._store.add(token, hash_secret(secret))
        return token, secret

    async def list(self) -> list[WorkerToken]:
        return await self._store.all()

    async def revoke(self, token_id: str) -> bool:
        return await self._store.revoke(token_id, now=self._clock.now())

    async def resolve(self, secret: str) -> WorkerToken | None:
        """The live token with this secret, or None (unknown or revoked)."""
        if not secret.startswith(PREFIX):
            return None
        token = await self._store.by_hash(hash_secret(secret))
        if token is None or token.revoked_at is not None:
            return None
        return token
