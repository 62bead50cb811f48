"""API keys: scopes, secrets shown once, and last use recorded at most once a minute."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from comfygate.clock import FakeClock
from comfygate.keys import PREFIX, ApiKey, ApiKeys, UnknownScope, hash_secret, parse_scopes


class MemoryKeys:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[ApiKey, str]] = {}
        self.touches = 0

    async def add(self, key: ApiKey, secret_hash: str) -> None:
        self.rows[key.id] = (key, secret_hash)

    async def all(self) -> list[ApiKey]:
        return [k for k, _ in self.rows.values()]

    async def by_hash(self, secret_hash: str) -> ApiKey | None:
        return next((k for k, h in self.rows.values() if h == secret_hash), None)

    async def by_id(self, key_id: str) -> ApiKey | None:
        found = self.rows.get(key_id)
        return found[0] if found else None

    async def revoke(self, key_id: str, *, now: datetime) -> bool:
        key, h = self.rows[key_id]
        self.rows[key_id] = (replace(key, revoked_at=now), h)
        return True

    async def touch(self, key_id: str, *, now: datetime) -> None:
        key, h = self.rows[key_id]
        self.rows[key_id] = (replace(key, last_used_at=now), h)
        self.touches += 1


def test_scopes_parse_and_unknown_ones_are_named() -> None:
    assert parse_scopes("jobs:write, jobs:read") == {"jobs:write", "jobs:read"}
    assert parse_scopes("raw") == {"raw"}
    with pytest.raises(UnknownScope, match="root"):
        parse_scopes("jobs:read,root")
    with pytest.raises(UnknownScope):
        parse_scopes(" , ")


async def test_a_key_is_stored_hashed_and_resolves_to_its_principal() -> None:
    store, clock = MemoryKeys(), FakeClock()
    keys = ApiKeys(store, clock)
    key, secret = await keys.create("site", frozenset({"jobs:read"}))
    assert secret.startswith(PREFIX)
    assert store.rows[key.id][1] == hash_secret(secret) != secret
    found = await keys.resolve(secret)
    assert found is not None
    assert found.principal().id == key.id and found.principal().kind == "key"
    live = await keys.live(key.id)
    assert live is not None and live.id == key.id
    await keys.revoke(key.id)
    assert await keys.resolve(secret) is None
    assert await keys.live(key.id) is None and await keys.live("no-such-key") is None


async def test_last_use_is_written_at_most_once_a_minute() -> None:
    store, clock = MemoryKeys(), FakeClock()
    keys = ApiKeys(store, clock)
    _, secret = await keys.create("site", frozenset({"jobs:read"}))
    for _ in range(5):
        await keys.resolve(secret)
        clock.advance(10)
    assert store.touches == 1
    clock.advance(20)
    await keys.resolve(secret)
    assert store.touches == 2
