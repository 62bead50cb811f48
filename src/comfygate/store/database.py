"""Schema commands for the CLI: open the database, migrate or report, close."""

from __future__ import annotations

from comfygate.store import migrate
from comfygate.store.engine import open_database


async def upgrade_schema(database_url: str) -> tuple[str | None, str]:
    """Migrate to head; (the revision before, head)."""
    db = open_database(database_url)
    try:
        before, _ = await migrate.current_revision(db)
        await migrate.upgrade(db)
        after, head = await migrate.current_revision(db)
        assert after == head
        return before, head
    finally:
        await db.dispose()


async def schema_revision(database_url: str) -> tuple[str | None, str]:
    db = open_database(database_url)
    try:
        return await migrate.current_revision(db)
    finally:
        await db.dispose()
