"""The ``keys`` commands: create, list and revoke on the gateway's database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from comfygate.clock import SYSTEM_CLOCK
from comfygate.config import Settings
from comfygate.errors import ComfygateError
from comfygate.jobs.webhooks import WebhookTarget
from comfygate.keys import ApiKey, ApiKeys
from comfygate.ssrf import AddressGuard
from comfygate.store import open_store
from comfygate.store.api_keys import SqlApiKeys
from comfygate.webhooks.urls import WebhookUrlCheck

T = TypeVar("T")


async def _with_keys(settings: Settings, fn: Callable[[ApiKeys], Awaitable[T]]) -> T:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.db_url, clock=SYSTEM_CLOCK)
    try:
        return await fn(ApiKeys(SqlApiKeys(store.db), SYSTEM_CLOCK))
    finally:
        await store.close()


class BadWebhookUrl(ValueError):
    pass


async def check_webhook_url(settings: Settings, url: str) -> None:
    """The rules of a submit's ``webhook.url``: length, https (http only to an
    allow-listed host), and a public address unless ``outbound.allow`` lists it."""
    try:
        target = WebhookTarget.parse({"url": url})
        await WebhookUrlCheck(AddressGuard.from_settings(settings.outbound.allow)).check(target.url)
    except ComfygateError as exc:
        raise BadWebhookUrl(exc.message) from None


async def create_key(
    settings: Settings,
    name: str,
    scopes: frozenset[str],
    pool: str | None,
    webhook_url: str | None = None,
) -> tuple[ApiKey, str]:
    if webhook_url is not None:
        await check_webhook_url(settings, webhook_url)
    return await _with_keys(
        settings, lambda k: k.create(name, scopes, pool=pool, webhook_url=webhook_url)
    )


async def list_keys(settings: Settings) -> list[ApiKey]:
    return await _with_keys(settings, lambda k: k.list())


async def revoke_key(settings: Settings, key_id: str) -> bool:
    return await _with_keys(settings, lambda k: k.revoke(key_id))


def describe(key: ApiKey) -> str:
    state = "revoked " + key.revoked_at.isoformat() if key.revoked_at else "active"
    used = key.last_used_at.isoformat() if key.last_used_at else "never"
    pool = f"  pool={key.pool}" if key.pool else ""
    hook = f"  webhook={key.webhook_url}" if key.webhook_url else ""
    scopes = ",".join(sorted(key.scopes))
    return f"{key.id}  {key.name}  scopes={scopes}{pool}{hook}  {state}  last used {used}"
