"""The statement count a database keeps for benchmarks."""

from __future__ import annotations

from sqlalchemy import Connection, text

from comfygate.store.engine import open_database


async def test_statements_are_counted_without_begin_and_commit(empty_database_url: str) -> None:
    db = open_database(empty_database_url)
    try:

        def two(conn: Connection) -> None:
            conn.execute(text("SELECT 1"))
            conn.execute(text("SELECT 2"))

        await db.write(two)
        await db.read(lambda conn: conn.execute(text("SELECT 3")).scalar())
        assert db.statements == 3
    finally:
        await db.dispose()
