"""The ``keys`` commands: create, list and revoke on the gateway's database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from comfygate.clock import SYSTEM_CLOCK
from comfygate.config import Settings
from comfygate.keys import ApiKey, ApiKeys
from comfygate.store import open_store
from comfygate.store.api_keys import SqlApiKeys

T = TypeVar("T")


async def _with_keys(settings: Settings, fn: Callable[[ApiKeys], Awaitable[T]]) -> T:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.db_url, clock=SYSTEM_CLOCK)
    try:
        return await fn(ApiKeys(SqlApiKeys(store.db), SYSTEM_CLOCK))
    finally:
        await store.close()


async def create_key(
    settings: Settings, name: str, scopes: frozenset[str], pool: str | None
) -> tuple[ApiKey, str]:
    return await _with_keys(settings, lambda k: k.create(name, scopes, pool=pool))


async def list_keys(settings: Settings) -> list[ApiKey]:
    return await _with_keys(settings, lambda k: k.list())


async def revoke_key(settings: Settings, key_id: str) -> bool:
    return await _with_keys(settings, lambda k: k.revoke(key_id))


def describe(key: ApiKey) -> str:
    state = "revoked " + key.revoked_at.isoformat() if key.revoked_at else "active"
    used = key.last_used_at.isoformat() if key.last_used_at else "never"
    pool = f"  pool={key.pool}" if key.pool else ""
    scopes = ",".join(sorted(key.scopes))
    return f"{key.id}  {key.name}  scopes={scopes}{pool}  {state}  last used {used}"
