"""Submissions per minute per principal and per client address, with ``limits``.

Counters live in memory, or in Redis when ``broker_url`` is a ``redis://`` URL (then
every gateway shares them). The moving window is exact: the storage adds a hit only
while the window has room, atomically (a lock in memory, a Lua script in Redis).

Answers carry the IETF httpapi draft's ``RateLimit-Policy`` and ``RateLimit``
headers, e.g. ``RateLimit-Policy: "principal";q=10;w=60`` and
``RateLimit: "principal";r=3;t=42``; a refusal adds ``Retry-After``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerMinute
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from comfygate.config import LimitSettings
from comfygate.errors import RateLimited
from comfygate.principal import Principal

WINDOW_S = 60
#: never rate limited: the operator and the worker agents
EXEMPT_KINDS = frozenset({"admin", "worker"})
#: one principal for every caller without credentials (``--allow-anonymous``): one
#: count for all would let a single abuser lock every other caller out, so it counts
#: per client address, as if each address were a principal of its own
SHARED_KINDS = frozenset({"local"})


@dataclass(frozen=True)
class KindRates:
    """Submissions a minute for one kind of principal; 0 is no limit."""

    per_principal: int = 0
    per_address: int = 0


@dataclass(frozen=True)
class _Rule:
    name: str
    item: RateLimitItemPerMinute
    key: str


def kind_rates(limits: LimitSettings, *, public_anonymous: bool) -> dict[str, KindRates]:
    """Each kind's rates. ``public_anonymous`` (anonymous use on a public site): a
    caller without credentials is anyone on the internet, so unless ``local`` has
    limits of its own it is held to a visitor's; else it would skip every limit by
    not sending the visitor cookie."""
    kinds = dict(limits.kinds)
    if public_anonymous and "local" not in kinds and "visitor" in kinds:
        kinds["local"] = kinds["visitor"]
    return {
        kind: KindRates(per_principal=k.per_minute, per_address=k.per_address_per_minute)
        for kind, k in kinds.items()
    }


def open_storage(broker_url: str | None, *, key_prefix: str = "comfygate-rate") -> Storage:
    if broker_url and broker_url.startswith(("redis://", "rediss://")):
        # redis-py, the broker's client, not limits' default coredis: one Redis client
        storage = storage_from_string(
            f"async+{broker_url}", key_prefix=key_prefix, implementation="redispy"
        )
    else:
        storage = storage_from_string("async+memory://")
    assert isinstance(storage, Storage)
    return storage


async def close_storage(storage: Any) -> None:
    # limits keeps the Redis client behind its bridge and offers no close of its own.
    client = getattr(getattr(storage, "bridge", None), "storage", None)
    if client is not None:
        await client.aclose()  # and the pool it made from the URL


class SubmitRateLimiter:
    def __init__(
        self,
        rates: Mapping[str, KindRates],
        storage: Storage,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._rates = rates
        self._limiter = MovingWindowRateLimiter(storage)
        self._now = now

    def _rules(self, principal: Principal, address: str) -> list[_Rule]:
        rates = self._rates.get(principal.kind)
        if rates is None or principal.kind in EXEMPT_KINDS:
            return []
        rules = []
        if rates.per_principal:
            item = RateLimitItemPerMinute(rates.per_principal)
            who = principal.id
            if principal.kind in SHARED_KINDS:
                who = f"{principal.id}@{address}"
            rules.append(_Rule("principal", item, f"principal:{who}"))
        if rates.per_address:
            item = RateLimitItemPerMinute(rates.per_address)
            rules.append(_Rule("address", item, f"address:{address}"))
        return rules

    async def aclose(self) -> None:
        """Close the connections to Redis, if any (memory holds none)."""
        await close_storage(self._limiter.storage)

    async def hit(self, principal: Principal, address: str) -> dict[str, str]:
        """Count one submission; the headers to send, or ``RateLimited`` carrying them."""
        rules = self._rules(principal, address)
        if not rules:
            return {}
        # Test every rule first, so a submission refused by one does not use up another;
        # the hit is what decides, atomically, when submissions race.
        refused = [r for r in rules if not await self._limiter.test(r.item, r.key)]
        if not refused:
            refused = [r for r in rules if not await self._limiter.hit(r.item, r.key)]
        headers = await self._headers(rules)
        if refused:
            stats = [await self._limiter.get_window_stats(r.item, r.key) for r in refused]
            wait = max(stat.reset_time for stat in stats) - self._now()
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
            names = " and ".join(f"the per-{r.name} limit" for r in refused)
            raise RateLimited(
                f"too many submissions: {names} of {refused[0].item.amount} a minute is reached",
                headers=headers,
                details={"limits": [r.name for r in refused]},
            )
        return headers

    async def _headers(self, rules: list[_Rule]) -> dict[str, str]:
        policy, state = [], []
        for rule in rules:
            stats = await self._limiter.get_window_stats(rule.item, rule.key)
            reset = max(0, math.ceil(stats.reset_time - self._now()))
            policy.append(f'"{rule.name}";q={rule.item.amount};w={WINDOW_S}')
            state.append(f'"{rule.name}";r={max(0, stats.remaining)};t={reset}')
        return {"RateLimit-Policy": ", ".join(policy), "RateLimit": ", ".join(state)}
