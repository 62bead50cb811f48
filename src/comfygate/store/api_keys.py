"""API keys in the database: looked up by the hash of their secret, never by it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from comfygate.keys import ApiKey
from comfygate.store.engine import Database
from comfygate.store.rows import aware, must_aware
from comfygate.store.tables import api_keys


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=frozenset(row.scopes.split()),
        pool=row.pool,
        webhook_url=row.webhook_url,
        created_at=must_aware(row.created_at),
        revoked_at=aware(row.revoked_at),
        last_used_at=aware(row.last_used_at),
    )


class SqlApiKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, key: ApiKey, secret_hash: str) -> None:
        def run(conn: Connection) -> None:
            conn.execute(
                insert(api_keys).values(
                    id=key.id,
                    name=key.name,
                    scopes=" ".join(sorted(key.scopes)),
                    pool=key.pool,
                    webhook_url=key.webhook_url,
                    secret_hash=secret_hash,
                    created_at=key.created_at,
                )
            )

        await self._db.write(run)

    async def all(self) -> list[ApiKey]:
        def run(conn: Connection) -> list[ApiKey]:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at))
            return [_key(r) for r in rows]

        return await self._db.read(run)

    async def by_hash(self, secret_hash: str) -> ApiKey | None:
        def run(conn: Connection) -> ApiKey | None:
            row = conn.execute(
                select(api_keys).where(api_keys.c.secret_hash == secret_hash)
            ).first()
            return None if row is None else _key(row)

        return await self._db.read(run)

    async def by_id(self, key_id: str) -> ApiKey | None:
        def run(conn: Connection) -> ApiKey | None:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            return None if row is None else _key(row)

        return await self._db.read(run)

    async def revoke(self, key_id: str, *, now: datetime) -> bool:
        """False when no live key has this id."""

        def run(conn: Connection) -> bool:
            done = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return done.rowcount > 0

        return await self._db.write(run)

    async def touch(self, key_id: str, *, now: datetime) -> None:
        def run(conn: Connection) -> None:
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))

        await self._db.write(run)
