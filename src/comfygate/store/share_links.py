"""Share links in the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from comfygate.shares import ShareLink
from comfygate.store.engine import Database
from comfygate.store.rows import aware, must_aware
from comfygate.store.tables import share_links


def _link(row: Row[Any]) -> ShareLink:
    return ShareLink(
        id=row.id,
        job_id=row.job_id,
        owner_id=row.owner_id,
        created_at=must_aware(row.created_at),
        expires_at=aware(row.expires_at),
        revoked_at=aware(row.revoked_at),
    )


class SqlShareLinks:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, link: ShareLink) -> None:
        def run(conn: Connection) -> None:
            conn.execute(
                insert(share_links).values(
                    id=link.id,
                    job_id=link.job_id,
                    owner_id=link.owner_id,
                    created_at=link.created_at,
                    expires_at=link.expires_at,
                )
            )

        await self._db.write(run)

    async def get(self, share_id: str) -> ShareLink | None:
        def run(conn: Connection) -> ShareLink | None:
            row = conn.execute(select(share_links).where(share_links.c.id == share_id)).first()
            return None if row is None else _link(row)

        return await self._db.read(run)

    async def of_job(self, job_id: str) -> list[ShareLink]:
        def run(conn: Connection) -> list[ShareLink]:
            rows = conn.execute(
                select(share_links)
                .where(share_links.c.job_id == job_id)
                .order_by(share_links.c.created_at)
            )
            return [_link(r) for r in rows]

        return await self._db.read(run)

    async def revoke(self, share_id: str, *, job_id: str, now: datetime) -> bool:
        def run(conn: Connection) -> bool:
            done = conn.execute(
                update(share_links)
                .where(
                    share_links.c.id == share_id,
                    share_links.c.job_id == job_id,
                    share_links.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            return done.rowcount > 0

        return await self._db.write(run)
