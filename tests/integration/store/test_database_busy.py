"""A database whose connections are all taken answers DatabaseBusy (the API's 503),
not the pool's own timeout (a 500)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from comfygate.errors import DatabaseBusy
from comfygate.store.engine import AsyncDatabase

pytestmark = pytest.mark.postgres


async def test_no_free_connection_is_database_busy(pg_database: str) -> None:
    db = AsyncDatabase(pg_database, pool_size=1, max_overflow=0, pool_timeout_s=0.01)
    try:
        async with db._connection(db._engine):
            with pytest.raises(DatabaseBusy):
                await db.read(lambda conn: conn.execute(text("SELECT 1")).scalar())
            with pytest.raises(DatabaseBusy):
                await db.write(lambda conn: conn.execute(text("SELECT 1")).scalar())
        assert await db.read(lambda conn: conn.execute(text("SELECT 1")).scalar()) == 1
    finally:
        await db.dispose()
