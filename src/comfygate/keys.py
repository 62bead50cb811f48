"""API keys: the credential of programs, remote workers and operators' scripts.

Only a hash of the secret is stored, so a leaked database hands out no working key; the
secret is shown once, at creation. A key carries scopes; routes check them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from comfygate.clock import Clock
from comfygate.ids import new_id
from comfygate.principal import Principal

#: every new key starts so, which tells it apart from a JWT or the admin token at a glance
PREFIX = "cgk_"
#: what a key may be granted; ``raw`` is reserved (accepted, grants nothing yet)
SCOPES = ("jobs:write", "jobs:read", "admin", "worker", "raw")
#: last_used_at is a hint for operators, not an audit log: one write a minute at most
TOUCH_EVERY = timedelta(minutes=1)


class UnknownScope(ValueError):
    pass


def parse_scopes(text: str) -> frozenset[str]:
    """``jobs:write,jobs:read`` → the scopes; an unknown or empty list is refused."""
    scopes = frozenset(s.strip() for s in text.replace(" ", ",").split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise UnknownScope(f"unknown scope {', '.join(unknown)} (known: {', '.join(SCOPES)})")
    if not scopes:
        raise UnknownScope(f"give at least one scope of {', '.join(SCOPES)}")
    return scopes


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[str]
    created_at: datetime
    #: a worker key may lease from this pool only (None: any)
    pool: str | None = None
    #: where this key's submits without a ``webhook`` send their terminal events
    webhook_url: str | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def principal(self) -> Principal:
        return Principal(id=self.id, kind="key", scopes=self.scopes, webhook_url=self.webhook_url)


class KeyStore(Protocol):
    async def add(self, key: ApiKey, secret_hash: str) -> None: ...

    async def all(self) -> list[ApiKey]: ...

    async def by_hash(self, secret_hash: str) -> ApiKey | None: ...

    async def by_id(self, key_id: str) -> ApiKey | None: ...

    async def revoke(self, key_id: str, *, now: datetime) -> bool: ...

    async def touch(self, key_id: str, *, now: datetime) -> None: ...


def hash_secret(secret: str) -> str:
    # The secret has 256 random bits: a plain hash is enough, no slow KDF needed.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeys:
    def __init__(self, store: KeyStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self,
        name: str,
        scopes: frozenset[str],
        *,
        pool: str | None = None,
        webhook_url: str | None = None,
    ) -> tuple[ApiKey, str]:
        """The new key and its secret (the only time the secret is known). The caller
        has checked ``webhook_url`` as a submit's webhook URL is checked."""
        unknown = scopes - set(SCOPES)
        if unknown or not scopes:
            raise UnknownScope(f"bad scopes {sorted(unknown)}")
        key = ApiKey(
            id=new_id(),
            name=name,
            scopes=scopes,
            pool=pool,
            webhook_url=webhook_url,
            created_at=self._clock.now(),
        )
        secret = PREFIX + secrets.token_urlsafe(32)
        await self._store.add(key, hash_secret(secret))
        return key, secret

    async def list(self) -> list[ApiKey]:
        return await self._store.all()

    async def revoke(self, key_id: str) -> bool:
        return await self._store.revoke(key_id, now=self._clock.now())

    async def live(self, key_id: str) -> ApiKey | None:
        """The key with this id unless it is revoked (or never was)."""
        key = await self._store.by_id(key_id)
        return None if key is None or key.revoked_at is not None else key

    async def revoked_id(self, secret: str) -> str | None:
        """The id of the revoked key with this secret, or None (unknown or live)."""
        key = await self._store.by_hash(hash_secret(secret))
        return key.id if key is not None and key.revoked_at is not None else None

    async def resolve(self, secret: str) -> ApiKey | None:
        """The live key with this secret, or None (unknown or revoked)."""
        key = await self._store.by_hash(hash_secret(secret))
        if key is None or key.revoked_at is not None:
            return None
        now = self._clock.now()
        if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
            await self._store.touch(key.id, now=now)
        return key
