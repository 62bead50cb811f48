"""Share links: a job shown read-only to whoever holds the link, until its owner revokes it.

The token a link carries is a row's id signed by the gateway (``Tokens.share_token``):
the signature stops forgery, the row makes revocation and expiry possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from comfygate.clock import Clock
from comfygate.ids import new_id


@dataclass(frozen=True, kw_only=True)
class ShareLink:
    id: str
    job_id: str
    owner_id: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class ShareStore(Protocol):
    async def add(self, link: ShareLink) -> None: ...

    async def get(self, share_id: str) -> ShareLink | None: ...

    async def of_job(self, job_id: str) -> list[ShareLink]: ...

    async def revoke(self, share_id: str, *, job_id: str, now: datetime) -> bool: ...


class ShareLinks:
    def __init__(self, store: ShareStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self, job_id: str, owner_id: str, *, expires_in_s: int | None = None
    ) -> ShareLink:
        now = self._clock.now()
        expires = now + timedelta(seconds=expires_in_s) if expires_in_s else None
        link = ShareLink(
            id=new_id(), job_id=job_id, owner_id=owner_id, created_at=now, expires_at=expires
        )
        await self._store.add(link)
        return link

    async def open(self, share_id: str) -> ShareLink | None:
        """The link if it still opens its job (not revoked, not expired), else None."""
        link = await self._store.get(share_id)
        return link if link is not None and link.live(self._clock.now()) else None

    async def of_job(self, job_id: str) -> list[ShareLink]:
        return await self._store.of_job(job_id)

    async def revoke(self, share_id: str, *, job_id: str) -> bool:
        """False when the job has no live link with this id."""
        return await self._store.revoke(share_id, job_id=job_id, now=self._clock.now())
