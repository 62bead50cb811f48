"""Pooled PostgreSQL connections that die: a call that ran nothing runs again on a fresh
connection; one that may have changed something is not repeated."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from comfygate.store.engine import AsyncDatabase
from tests.integration.store.conftest import PG_HOST, PG_PORT

pytestmark = pytest.mark.postgres


async def _end_sessions_of(url: str) -> int:
    """What a restarted server does to a pool: every session of the database ends."""
    database = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(host=PG_HOST, port=int(PG_PORT), user="postgres")
    try:
        ended = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        return len(ended)
    finally:
        await conn.close()


def _nap(conn: Connection) -> None:
    conn.execute(text("SELECT pg_sleep(0.05)"))


def _one(conn: Connection) -> int:
    return int(conn.execute(text("SELECT 1")).scalar_one())


async def test_calls_after_the_server_ended_every_pooled_connection_succeed(
    pg_database: str,
) -> None:
    db = AsyncDatabase(pg_database, pool_size=2, max_overflow=0)
    try:
        # Fill the pool with two open connections, both idle afterwards: two reads at
        # once, each holding its connection while the server sleeps.
        await asyncio.gather(db.read(_nap), db.read(_nap))
        assert await _end_sessions_of(pg_database) >= 2
        assert await db.read(_one) == 1
        assert await db.write(_one) == 1
        assert await _end_sessions_of(pg_database) >= 1
        assert await db.write(_one) == 1
    finally:
        await db.dispose()


async def test_a_write_whose_connection_died_after_a_statement_is_not_run_again(
    pg_database: str,
) -> None:
    db = AsyncDatabase(pg_database, pool_size=1, max_overflow=0)
    runs = 0

    def dies_midway(conn: Connection) -> None:
        nonlocal runs
        runs += 1
        conn.execute(text("SELECT 1"))
        conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    try:
        with pytest.raises(DBAPIError) as raised:
            await db.write(dies_midway)
        assert raised.value.connection_invalidated
        assert runs == 1
        assert await db.read(_one) == 1
    finally:
        await db.dispose()
