"""Engines per dialect. SQLite: WAL, busy timeout, one writer with BEGIN IMMEDIATE
(a deferred transaction that reads then writes fails at once with SQLITE_BUSY)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIN_SQLITE = (3, 35, 0)  # UPDATE … RETURNING


@dataclass(frozen=True)
class Engines:
    writer: AsyncEngine
    reader: AsyncEngine

    @property
    def sqlite(self) -> bool:
        return self.writer.dialect.name == "sqlite"

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _sqlite_engine(url: str, begin: str | None, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not BEGIN on its own; we emit our own BEGIN below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    if begin is not None:

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    return engine


def make_engines(url: str) -> Engines:
    if url.startswith("sqlite"):
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise RuntimeError(
                f"SQLite {sqlite3.sqlite_version} is too old: comfygate needs 3.35 or newer"
            )
        return Engines(
            writer=_sqlite_engine(url, "BEGIN IMMEDIATE", 1),
            # Reads are single statements: SQLite's autocommit gives each a consistent
            # snapshot, and skipping BEGIN saves a round trip to the driver's thread.
            reader=_sqlite_engine(url, None, 4),
        )
    engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    return Engines(writer=engine, reader=engine)
