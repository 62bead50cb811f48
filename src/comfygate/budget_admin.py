"""The ``budgets`` commands: set, list and remove on the gateway's database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from comfygate.clock import SYSTEM_CLOCK
from comfygate.config import Settings
from comfygate.jobs.quota import Budget
from comfygate.store import open_store
from comfygate.store.quotas import SqlBudgets

T = TypeVar("T")


async def _with_budgets(settings: Settings, fn: Callable[[SqlBudgets], Awaitable[T]]) -> T:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.db_url, clock=SYSTEM_CLOCK)
    try:
        return await fn(SqlBudgets(store.db))
    finally:
        await store.close()


async def set_budget(settings: Settings, principal_id: str, budget: Budget) -> None:
    await _with_budgets(settings, lambda b: b.set(principal_id, budget, now=SYSTEM_CLOCK.now()))


async def list_budgets(settings: Settings) -> list[tuple[str, Budget]]:
    return await _with_budgets(settings, lambda b: b.all())


async def remove_budget(settings: Settings, principal_id: str) -> bool:
    return await _with_budgets(settings, lambda b: b.remove(principal_id))


def describe(principal_id: str, budget: Budget) -> str:
    return f"{principal_id}  {budget.amount:g} a {budget.period}"
