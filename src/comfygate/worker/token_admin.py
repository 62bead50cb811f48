"""The ``worker-token`` commands: create, list and revoke on the gateway's database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from comfygate.clock import SYSTEM_CLOCK
from comfygate.config import Settings
from comfygate.store import open_store
from comfygate.store.worker_tokens import SqlWorkerTokens
from comfygate.worker.tokens import WorkerToken, WorkerTokens

T = TypeVar("T")


async def _with_tokens(settings: Settings, fn: Callable[[WorkerTokens], Awaitable[T]]) -> T:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.db_url, clock=SYSTEM_CLOCK)
    try:
        return await fn(WorkerTokens(SqlWorkerTokens(store.db), SYSTEM_CLOCK))
    finally:
        await store.close()


async def create_token(settings: Settings, name: str, pool: str | None) -> tuple[WorkerToken, str]:
    return await _with_tokens(settings, lambda t: t.create(name, pool=pool))


async def list_tokens(settings: Settings) -> list[WorkerToken]:
    return await _with_tokens(settings, lambda t: t.list())


async def revoke_token(settings: Settings, token_id: str) -> bool:
    return await _with_tokens(settings, lambda t: t.revoke(token_id))


def describe(token: WorkerToken) -> str:
    state = "revoked " + token.revoked_at.isoformat() if token.revoked_at else "active"
    return f"{token.id}  {token.name}  pool={token.pool or '*'}  {state}"
