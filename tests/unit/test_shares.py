"""Share links: open until they expire or their owner revokes them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from comfygate.clock import FakeClock
from comfygate.shares import ShareLink, ShareLinks


class MemoryShares:
    def __init__(self) -> None:
        self.rows: dict[str, ShareLink] = {}

    async def add(self, link: ShareLink) -> None:
        self.rows[link.id] = link

    async def get(self, share_id: str) -> ShareLink | None:
        return self.rows.get(share_id)

    async def of_job(self, job_id: str) -> list[ShareLink]:
        return [s for s in self.rows.values() if s.job_id == job_id]

    async def revoke(self, share_id: str, *, job_id: str, now: datetime) -> bool:
        link = self.rows.get(share_id)
        if link is None or link.job_id != job_id or link.revoked_at is not None:
            return False
        self.rows[share_id] = replace(link, revoked_at=now)
        return True


async def test_a_link_with_an_expiry_stops_opening_then() -> None:
    clock = FakeClock()
    shares = ShareLinks(MemoryShares(), clock)
    link = await shares.create("job-1", "owner", expires_in_s=3600)
    forever = await shares.create("job-1", "owner")
    clock.advance(3599)
    assert await shares.open(link.id) == link
    clock.advance(1)
    assert await shares.open(link.id) is None
    clock.advance(10**8)
    assert await shares.open(forever.id) == forever


async def test_a_revoked_link_stops_at_once_and_only_for_its_job() -> None:
    shares = ShareLinks(MemoryShares(), FakeClock())
    link = await shares.create("job-1", "owner")
    assert not await shares.revoke(link.id, job_id="job-2")
    assert await shares.revoke(link.id, job_id="job-1")
    assert await shares.open(link.id) is None
    assert not await shares.revoke(link.id, job_id="job-1")
    assert await shares.open("unknown") is None
