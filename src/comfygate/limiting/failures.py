"""Failed authentications per client address and per API key, with ``limits``.

Guessing credentials takes many tries; a caller whose tries failed ``per_minute``
times in the last minute is refused before its next credential is even looked at,
so a right guess then is refused too and guessing stops paying. A key that was
identified but refused (revoked, or without the scope it was sent for) is counted
under its id as well: spreading its tries over many addresses does not help either.
Counters live where the submission counters do (memory, or Redis for every gateway)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from limits import RateLimitItemPerMinute
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from comfygate.errors import TooManyFailedAttempts
from comfygate.limiting.rate import close_storage


class AuthFailures:
    def __init__(
        self, per_minute: int, storage: Storage, *, now: Callable[[], float] = time.time
    ) -> None:
        """``per_minute``: failures allowed a minute per address and per key; 0 is no limit."""
        self._item = RateLimitItemPerMinute(per_minute) if per_minute else None
        self._limiter = MovingWindowRateLimiter(storage)
        self._now = now

    async def aclose(self) -> None:
        await close_storage(self._limiter.storage)

    async def check(self, address: str) -> None:
        """Before a credential is verified: TooManyFailedAttempts while ``address`` has
        no failure left."""
        if self._item is not None and not await self._limiter.test(self._item, _address(address)):
            raise await self._refusal(_address(address))

    async def failed(self, address: str, key_id: str | None = None) -> None:
        """Count one failure for ``address`` and the key; TooManyFailedAttempts when
        either had none left (the caller raises its 401 otherwise)."""
        if self._item is None:
            return
        keys = [_address(address)] + ([f"key:{key_id}"] if key_id else [])
        over = [key for key in keys if not await self._limiter.hit(self._item, key)]
        if over:
            raise await self._refusal(*over)

    async def _refusal(self, *keys: str) -> TooManyFailedAttempts:
        assert self._item is not None
        stats = [await self._limiter.get_window_stats(self._item, key) for key in keys]
        wait = max(stat.reset_time for stat in stats) - self._now()
        return TooManyFailedAttempts(
            f"too many failed attempts to authenticate: {self._item.amount} a minute; retry later",
            retry_after_s=max(1, math.ceil(wait)),
        )


def _address(address: str) -> str:
    return f"address:{address}"
