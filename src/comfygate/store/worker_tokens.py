"""Worker tokens in the database: looked up by the hash of their secret, never by it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from comfygate.store.engine import Database
from comfygate.store.tables import worker_tokens
from comfygate.worker.tokens import WorkerToken


def _token(row: Row[Any]) -> WorkerToken:
    return WorkerToken(
        id=row.id,
        name=row.name,
        pool=row.pool,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class SqlWorkerTokens:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, token: WorkerToken, secret_hash: str) -> None:
        def run(conn: Connection) -> None:
            conn.execute(
                insert(worker_tokens).values(
                    id=token.id,
                    name=token.name,
                    pool=token.pool,
                    secret_hash=secret_hash,
                    created_at=token.created_at,
                    revoked_at=None,
                )
            )

        await self._db.write(run)

    async def all(self) -> list[WorkerToken]:
        def run(conn: Connection) -> list[WorkerToken]:
            rows = conn.execute(select(worker_tokens).order_by(worker_tokens.c.created_at))
            return [_token(r) for r in rows]

        return await self._db.read(run)

    async def by_hash(self, secret_hash: str) -> WorkerToken | None:
        def run(conn: Connection) -> WorkerToken | None:
            row = conn.execute(
                select(worker_tokens).where(worker_tokens.c.secret_hash == secret_hash)
            ).first()
            return None if row is None else _token(row)

        return await self._db.read(run)

    async def revoke(self, token_id: str, *, now: datetime) -> bool:
        """False when no live token has this id."""

        def run(conn: Connection) -> bool:
            done = conn.execute(
                update(worker_tokens)
                .where(worker_tokens.c.id == token_id, worker_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return done.rowcount > 0

        return await self._db.write(run)
